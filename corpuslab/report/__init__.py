"""report.json, summary.tsv, report.html, cross-experiment tables, statistics."""
