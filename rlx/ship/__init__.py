"""What ships a policy: loading a run's policy, export (ONNX, jax.export), videos."""
