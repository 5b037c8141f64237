/// The `quantization_config` that transformers (and vLLM) read from config.json to load a quantized
/// safetensors checkpoint.
enum QuantizationConfig {
    /// The config for `family`, or nil for GGUF and plain outputs. Linear weights that were left
    /// unquantized (2-D `*.weight` tensors that are not embeddings) are listed as modules to skip.
    /// bitsandbytes gets an empty list, never null, when every linear layer was quantized: on null
    /// transformers keeps its guess of the output layer unquantized (the last module of a model without
    /// an lm_head, e.g. BERT's `pooler.dense`) and then cannot load the quantized weight we wrote for it.
    /// Runs while planning: a tensor counts as quantized when its error is known or will be measured.
    static func json(family: QuantType.Family, options: Quantize.Options, report: QuantizeReport) -> JSONValue? {
        let entries = report.entries
        let kept = entries.filter { !report.isQuantized($0) && $0.shape.count == 2 && $0.name.hasSuffix(".weight")
            && !TensorSelection.isEmbedding($0.name) }
            .map { JSONValue.string(String($0.name.dropLast(".weight".count))) }
        let computeDType: String = {
            let dtypes = entries.filter(report.isQuantized).map(\.from)
            if dtypes.contains("BF16") { return "bfloat16" }
            if dtypes.contains("F16") { return "float16" }
            return "float32"
        }()
        switch family {
        case .bitsandbytes4, .bitsandbytes8:
            let four = family == .bitsandbytes4
            return .object([
                ("quant_method", "bitsandbytes"),
                ("_load_in_4bit", .bool(four)),
                ("_load_in_8bit", .bool(!four)),
                ("load_in_4bit", .bool(four)),
                ("load_in_8bit", .bool(!four)),
                ("bnb_4bit_compute_dtype", .string(computeDType)),
                ("bnb_4bit_quant_storage", "uint8"),
                ("bnb_4bit_quant_type", .string(options.type == .fp4 ? "fp4" : "nf4")),
                ("bnb_4bit_use_double_quant", .bool(options.doubleQuant)),
                ("llm_int8_enable_fp32_cpu_offload", false),
                ("llm_int8_has_fp16_weight", false),
                ("llm_int8_skip_modules", .array(kept)),
                ("llm_int8_threshold", 6.0),
            ])
        case .compressedTensors:
            let bits = options.type == .int4 ? 4 : 8
            let weights: JSONValue = .object([
                ("num_bits", .int(bits)), ("type", "int"), ("symmetric", .bool(!options.asymmetric)),
                ("strategy", bits == 4 ? "group" : "channel"),
                ("group_size", bits == 4 ? .int(options.groupSize) : .null),
                ("dynamic", false), ("actorder", .null), ("observer", "minmax"), ("observer_kwargs", .object([])),
            ])
            return .object([
                ("quant_method", "compressed-tensors"),
                ("format", "pack-quantized"),
                ("quantization_status", "compressed"),
                ("ignore", .array(kept.isEmpty ? ["lm_head"] : kept)),
                ("kv_cache_scheme", .null),
                ("config_groups", .object([("group_0", .object([
                    ("targets", ["Linear"]), ("input_activations", .null), ("output_activations", .null), ("weights", weights),
                ]))])),
            ])
        case .gguf, .plain:
            return nil
        }
    }
}
