"""Vision-language models of section 9.5: SmolVLM (``smolvlm``), the tiny VLM you build (``tiny``), its ONNX export (``onnx``)."""
