"""The report: run dirs gathered into tables (mean ± 95 % CI over seeds; csv, markdown, LaTeX) and
figures (PNG); ``unlearnbench-report`` and every ``-m`` sweep write it."""

from unlearnbench.report.plots import plot_requests, request_series
from unlearnbench.report.tables import load_runs, summarize, write_markdown_doc, write_report

__all__ = ["load_runs", "plot_requests", "request_series", "summarize", "write_markdown_doc", "write_report"]
