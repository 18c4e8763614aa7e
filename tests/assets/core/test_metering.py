"""Every asset and check step records the CPU it used (`cpu_s`), counted once per result."""

import time

import dagster as dg

from assets.core.metering import CPU_KEY, metered


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@dg.asset
@metered
def busy() -> dg.MaterializeResult:
    _burn(0.3)
    return dg.MaterializeResult(metadata={"rows": 1})


@dg.asset(check_specs=[dg.AssetCheckSpec("fine", asset="busy_with_check")])
@metered
def busy_with_check(context: dg.AssetExecutionContext):
    _burn(0.3)
    yield dg.MaterializeResult()
    _burn(0.2)
    yield dg.AssetCheckResult(check_name="fine", passed=True)


@dg.asset_check(asset=busy)
@metered
def busy_is_fine() -> dg.AssetCheckResult:
    _burn(0.1)
    return dg.AssetCheckResult(passed=True)


def test_results_carry_the_cpu_of_their_step_and_generators_do_not_count_twice():
    result = dg.materialize([busy, busy_with_check, busy_is_fine])
    assert result.success
    by_asset = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("busy")} | {
        m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("busy_with_check")
    }
    assert by_asset["busy"]["rows"].value == 1  # the step's own metadata is kept
    assert 0.25 <= by_asset["busy"][CPU_KEY].value < 2.0
    assert 0.25 <= by_asset["busy_with_check"][CPU_KEY].value < 2.0
    checks = {e.check_name: e.metadata for e in result.get_asset_check_evaluations()}
    # the check yielded after the materialization carries only the CPU since then
    assert 0.15 <= checks["fine"][CPU_KEY].value < by_asset["busy_with_check"][CPU_KEY].value
    assert 0.05 <= checks["busy_is_fine"][CPU_KEY].value < 1.0


def test_every_asset_and_check_of_vidcat_is_metered():
    import inspect

    from orchestration.definitions import all_assets, all_checks

    for definition in [*all_assets, *all_checks]:
        fn = definition.op.compute_fn.decorated_fn
        assert inspect.unwrap(fn) is not fn, f"{definition.op.name} is not wrapped"
        # the outermost wrapper is metered's own (wraps() copies the name and module, not the code)
        assert fn.__code__.co_filename == inspect.getsourcefile(metered), f"{definition.op.name} is not @metered"
