"""tomobile.runtime: what runs exported artifacts: validation, benchmarks, samplers."""
