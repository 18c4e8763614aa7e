"""Monitoring: drift of a batch against the student's training reference (the Evidently report is in
``data_checks``; this package picks the data). May import catalog, frames and the shared modules.
"""
