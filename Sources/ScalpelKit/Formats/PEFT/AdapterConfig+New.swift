import Foundation

extension AdapterConfig {
    /// A new LoRA config as PEFT writes one, for adapters Scalpel creates (stacking, extraction).
    ///
    /// The JSON holds the keys every PEFT version since 0.7 reads, sorted as PEFT sorts them: alpha_pattern,
    /// base_model_name_or_path, bias "none", fan_in_fan_out, inference_mode true, init_lora_weights true,
    /// layers_pattern null, layers_to_transform null, lora_alpha, lora_dropout 0, modules_to_save,
    /// peft_type "LORA", r, rank_pattern, revision null, target_modules, task_type, use_rslora; plus
    /// `use_dora` and `lora_bias` only when true (older PEFT versions reject keys they do not know).
    ///
    /// - Parameters:
    ///   - rankPattern, alphaPattern: regex key -> value, matched against module paths as PEFT does
    ///     (`(.*\.)?(KEY)$`); `modulePattern(_:)` makes a key that matches exactly one path.
    ///   - targetModules: a list of module-name suffixes or full paths, or one regex string.
    public init(
        r: Int, loraAlpha: Double, targetModules: JSONValue, rankPattern: [(String, Int)] = [],
        alphaPattern: [(String, Double)] = [], useRSLoRA: Bool = false, useDoRA: Bool = false,
        fanInFanOut: Bool = false, loraBias: Bool = false, modulesToSave: [String] = [],
        baseModelNameOrPath: String? = nil, taskType: String? = nil
    ) throws {
        var pairs: [(String, JSONValue)] = [
            ("alpha_pattern", .object(alphaPattern.map { ($0.0, AdapterConfig.number($0.1)) })),
            ("base_model_name_or_path", baseModelNameOrPath.map { .string($0) } ?? .null),
            ("bias", "none"),
            ("fan_in_fan_out", .bool(fanInFanOut)),
            ("inference_mode", true),
            ("init_lora_weights", true),
            ("layers_pattern", .null),
            ("layers_to_transform", .null),
            ("lora_alpha", AdapterConfig.number(loraAlpha)),
        ]
        if loraBias { pairs.append(("lora_bias", true)) }
        pairs += [
            ("lora_dropout", .double(0)),
            ("modules_to_save", modulesToSave.isEmpty ? .null : .array(modulesToSave.map { .string($0) })),
            ("peft_type", "LORA"),
            ("r", .int(r)),
            ("rank_pattern", .object(rankPattern.map { ($0.0, .int($0.1)) })),
            ("revision", .null),
            ("target_modules", targetModules),
            ("task_type", taskType.map { .string($0) } ?? .null),
        ]
        if useDoRA { pairs.append(("use_dora", true)) }
        pairs.append(("use_rslora", .bool(useRSLoRA)))
        try self.init(json: .object(pairs), file: "adapter_config.json")
    }

    /// A rank_pattern / alpha_pattern key matching exactly the module at `path` (regex-escaped).
    public static func modulePattern(_ path: String) -> String {
        NSRegularExpression.escapedPattern(for: path)
    }

    /// Integral values as JSON integers (PEFT writes `"lora_alpha": 16`), others as floats.
    static func number(_ v: Double) -> JSONValue {
        v == v.rounded() && abs(v) < 1e15 ? .int(Int(v)) : .double(v)
    }
}
