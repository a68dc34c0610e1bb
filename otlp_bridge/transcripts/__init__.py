"""History from Claude Code's own JSONL transcripts (`otlp-bridge import`).

reader: files → one `Usage` per assistant line; ledger: each API response once; history: priced
totals per period; openmetrics: those totals as timestamped counters for `promtool` backfill.
"""
