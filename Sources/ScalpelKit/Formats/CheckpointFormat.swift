/// The container a checkpoint is stored in.
public enum CheckpointFormat: String, Sendable {
    /// One `.safetensors` file.
    case safetensors
    /// A folder of safetensors shards, with or without `model.safetensors.index.json`.
    case shardedSafetensors = "safetensors-sharded"
    /// A GGUF v2/v3 file.
    case gguf
    /// A PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`).
    case peftAdapter = "peft-adapter"
    /// A `torch.save` zip archive (`pytorch_model.bin`, `*.pt`), or a folder of them with
    /// `pytorch_model.bin.index.json`, read by a restricted unpickler.
    case pytorch
}
