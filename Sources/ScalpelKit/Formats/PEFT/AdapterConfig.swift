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
    /// Every key Scalpel reads must have PEFT's type when present (a wrong type is an error naming the
    /// key, never a silent default): `r` a positive integer, `lora_alpha` a finite number, the flags
    /// booleans, `target_modules` a string or a list of strings, `rank_pattern`/`alpha_pattern` objects of
    /// valid regular expressions to positive integers/finite numbers, `modules_to_save` a list of
    /// strings. JSON null counts as absent.
    public init(json: JSONValue, file: String) throws {
        guard case .object = json else {
            throw ScalpelError.malformed(file: file, tensor: nil, reason: "adapter config is not a JSON object")
        }
        func bad(_ key: String, _ what: String) -> ScalpelError {
            .malformed(file: file, tensor: nil, reason: "\(key) \(what)")
        }
        func value(_ key: String) -> JSONValue? {
            guard let v = json[key], v != .null else { return nil }
            return v
        }
        func positiveInt(_ v: JSONValue, _ key: String) throws -> Int {
            guard let i = v.intValue, i > 0 else { throw bad(key, "must be a positive integer, found \(AdapterConfig.describe(v))") }
            return i
        }
        func finiteNumber(_ v: JSONValue, _ key: String) throws -> Double {
            guard let d = v.doubleValue, d.isFinite, v.stringValue == nil else {
                throw bad(key, "must be a finite number, found \(AdapterConfig.describe(v))")
            }
            return d
        }
        func flag(_ key: String) throws -> Bool {
            guard let v = value(key) else { return false }
            guard let b = v.boolValue else { throw bad(key, "must be true or false, found \(AdapterConfig.describe(v))") }
            return b
        }
        func patterns<V>(_ key: String, _ convert: (JSONValue, String) throws -> V) throws -> [(String, V)] {
            guard let v = value(key) else { return [] }
            guard let pairs = v.objectValue else { throw bad(key, "must be an object, found \(AdapterConfig.describe(v))") }
            return try pairs.map { k, v in
                do { _ = try NSRegularExpression(pattern: "^(.*\\.)?(\(k))$") } catch {
                    throw bad(key, "key \"\(k)\" is not a valid regular expression")
                }
                return (k, try convert(v, "\(key) \"\(k)\""))
            }
        }
        self.json = json
        if let v = value("peft_type") {
            guard let s = v.stringValue else { throw bad("peft_type", "must be a string, found \(AdapterConfig.describe(v))") }
            peftType = s
        } else {
            peftType = "LORA"
        }
        guard AdapterFamily(peftType: peftType) != nil else {
            throw ScalpelError.invalid(file: file, tensor: nil, reason: "peft_type \(peftType) is not supported (\(AdapterFamily.peftTypes.joined(separator: ", ")))")
        }
        r = try value("r").map { try positiveInt($0, "r") } ?? 8
        loraAlpha = try value("lora_alpha").map { try finiteNumber($0, "lora_alpha") } ?? 8
        targetModules = value("target_modules") ?? .null
        switch targetModules {
        case .null, .string: break
        case .array(let a) where a.allSatisfy({ $0.stringValue != nil }): break
        default: throw bad("target_modules", "must be a string or a list of strings, found \(AdapterConfig.describe(targetModules))")
        }
        useRSLoRA = try flag("use_rslora")
        useDoRA = try flag("use_dora")
        fanInFanOut = try flag("fan_in_fan_out")
        loraBias = try flag("lora_bias")
        // AdaLoRA's rank_pattern holds its budget masks (lists of booleans), read by AdapterFamily.
        rankPattern = peftType == "ADALORA" ? [] : try patterns("rank_pattern", positiveInt)
        alphaPattern = try patterns("alpha_pattern", finiteNumber)
        if let v = value("modules_to_save") {
            guard let a = v.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else {
                throw bad("modules_to_save", "must be a list of strings, found \(AdapterConfig.describe(v))")
            }
            modulesToSave = a.compactMap(\.stringValue)
        } else {
            modulesToSave = []
        }
    }

    /// A short description of a JSON value for error messages: its type, and the value when short.
    static func describe(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return "\(b)"
        case .int(let i): return "\(i)"
        case .double(let d): return "\(d)"
        case .string(let s): return s.count <= 32 ? "the string \"\(s)\"" : "a string"
        case .array: return "a list"
        case .object: return "an object"
        }
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
