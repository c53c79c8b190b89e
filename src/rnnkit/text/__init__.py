"""Character language models: corpus, the LM trainer, evaluation (static and dynamic), the fast
step, decoding, sampling, scoring, serving, export, probe and the report (docs/architecture.md)."""
