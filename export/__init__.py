"""The export toolchain: turns the PyTorch reference modules into on-device programs (ExecuTorch, ONNX, Core ML)."""
