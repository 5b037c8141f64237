import Foundation

/// The parts of a PEFT `adapter_config.json` that Scalpel reads, with PEFT's defaults.
public struct AdapterConfig: Sendable {
    /// The whole parsed file, kept so that unknown keys survive a rewrite.
    public var json: JSONValue
    public var peftType: String
    /// Default rank (`r`, default 8).
    public var r: Int
    /// Default alpha (`lora_alpha`, default 8).
    public var loraAlpha: Double
    /// `target_modules`: a list of name suffixes, or one regex string (including "all-linear").
    public var targetModules: JSONValue
    public var useRSLoRA: Bool
    public var useDoRA: Bool
    public var fanInFanOut: Bool
    /// `lora_bias`: `lora_B` carries a bias, merged as `bias += scaling * lora_B.bias`.
    public var loraBias: Bool
    /// Per-module rank overrides: regex key -> rank.
    public var rankPattern: [(String, Int)]
    /// Per-module alpha overrides: regex key -> alpha.
    public var alphaPattern: [(String, Double)]
    public var modulesToSave: [String]

    /// Parses a config. `peft_type` (default "LORA") must be one of `AdapterFamily`'s PEFT types; the
    /// LoRA fields keep their defaults for the other families (whose own fields `AdapterFamily` reads).
    public init(json: JSONValue, file: String) throws {
        guard case .object = json else {
            throw ScalpelError.malformed(file: file, tensor: nil, reason: "adapter config is not a JSON object")
        }
        self.json = json
        peftType = json["peft_type"]?.stringValue ?? "LORA"
        guard AdapterFamily(peftType: peftType) != nil else {
            throw ScalpelError.invalid(file: file, tensor: nil, reason: "peft_type \(peftType) is not supported (\(AdapterFamily.peftTypes.joined(separator: ", ")))")
        }
        r = json["r"]?.intValue ?? 8
        loraAlpha = json["lora_alpha"]?.doubleValue ?? 8
        guard r > 0 else { throw ScalpelError.malformed(file: file, tensor: nil, reason: "r must be positive") }
        targetModules = json["target_modules"] ?? .null
        useRSLoRA = json["use_rslora"]?.boolValue ?? false
        useDoRA = json["use_dora"]?.boolValue ?? false
        fanInFanOut = json["fan_in_fan_out"]?.boolValue ?? false
        loraBias = json["lora_bias"]?.boolValue ?? false
        rankPattern = (json["rank_pattern"]?.objectValue ?? []).compactMap { k, v in v.intValue.map { (k, $0) } }
        alphaPattern = (json["alpha_pattern"]?.objectValue ?? []).compactMap { k, v in v.doubleValue.map { (k, $0) } }
        modulesToSave = (json["modules_to_save"]?.arrayValue ?? []).compactMap(\.stringValue)
    }

    /// The target modules as display strings.
    public var targetModuleNames: [String] {
        switch targetModules {
        case .string(let s): return [s]
        case .array(let a): return a.compactMap(\.stringValue)
        default: return []
        }
    }

    /// The first pattern key matching `modulePath` as PEFT matches them: `(.*\.)?(KEY)$` from the start.
    static func firstMatch<V>(_ patterns: [(String, V)], modulePath: String) -> V? {
        for (key, value) in patterns {
            if let re = try? NSRegularExpression(pattern: "^(.*\\.)?(\(key))$"),
               re.firstMatch(in: modulePath, range: NSRange(modulePath.startIndex..., in: modulePath)) != nil {
                return value
            }
        }
        return nil
    }

    /// Rank of the module at `modulePath` (rank_pattern, else r).
    public func rank(for modulePath: String) -> Int {
        AdapterConfig.firstMatch(rankPattern, modulePath: modulePath) ?? r
    }

    /// Alpha of the module at `modulePath` (alpha_pattern, else lora_alpha).
    public func alpha(for modulePath: String) -> Double {
        AdapterConfig.firstMatch(alphaPattern, modulePath: modulePath) ?? loraAlpha
    }

    /// The LoRA scaling of a module: alpha / r, or alpha / sqrt(r) with rsLoRA.
    public func scaling(for modulePath: String) -> Double {
        let r = Double(rank(for: modulePath))
        return alpha(for: modulePath) / (useRSLoRA ? r.squareRoot() : r)
    }
}
