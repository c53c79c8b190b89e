"""What both wings share: fields and configs, file helpers, vocabulary and windows, checkpoints,
models and regularisers, presets, precision, distributed, the training loop, resume, the run log,
plots and the claimed run directory. The core imports no wing (docs/architecture.md)."""
