import Foundation

/// kohya-ss / LyCORIS LoRA files: one safetensors file with, per module, `<prefix>.lora_down.weight`
/// [r, in], `<prefix>.lora_up.weight` [out, r] and optionally `<prefix>.alpha` (a scalar); the update is
/// `(alpha / r) * up @ down`, with alpha = r (scale 1) when absent. The prefix is the module path with
/// dots replaced by underscores, usually behind a `lora_unet_` / `lora_te_` / `lora_te1_` / `lora_te2_`
/// marker. Files Scalpel writes also carry the exact module paths in the metadata key
/// `scalpel_module_paths` (JSON: prefix -> path), since underscores cannot be turned back into dots
/// without the base.
public enum KohyaLoRA {
    public static let downSuffix = ".lora_down.weight"
    public static let upSuffix = ".lora_up.weight"
    public static let alphaSuffix = ".alpha"
    /// The metadata key with the module paths of a file Scalpel wrote.
    public static let modulePathsKey = "scalpel_module_paths"
    /// Prefix markers stripped by the built-in name mapping, longest first.
    public static let markers = ["lora_unet_", "lora_te1_", "lora_te2_", "lora_te_", "lora_"]

    /// True when the safetensors checkpoint holds kohya LoRA keys.
    public static func isKohya(_ ckpt: Checkpoint) -> Bool {
        ckpt.format == .safetensors && ckpt.tensors.contains { $0.name.hasSuffix(downSuffix) }
    }

    /// The kohya prefix of a module path, behind `marker`.
    public static func prefix(forModulePath path: String, marker: String = "lora_unet_") -> String {
        marker + path.replacingOccurrences(of: ".", with: "_")
    }

    /// The modules of a kohya file. Module paths are the prefixes, or the exact paths recorded in
    /// `scalpel_module_paths`; `weightName` is `<path>.weight` (rewrite with `resolvingKohyaNames`).
    /// - Throws: `ScalpelError.malformed` for a down without an up, shapes that do not chain, a non-scalar
    ///   alpha; `ScalpelError.invalid` for convolution LoRAs and keys of other LyCORIS kinds.
    static func modules(_ ckpt: Checkpoint) throws -> [LoRAModule] {
        let recorded = recordedPaths(ckpt)
        var modules: [LoRAModule] = []
        for t in ckpt.tensors {
            if t.name.hasSuffix(upSuffix) || t.name.hasSuffix(alphaSuffix) {
                let prefix = String(t.name.dropLast(t.name.hasSuffix(upSuffix) ? upSuffix.count : alphaSuffix.count))
                guard ckpt.info(named: prefix + downSuffix) != nil else {
                    throw ScalpelError.malformed(file: ckpt.path, tensor: t.name, reason: "has no matching \(prefix + downSuffix)")
                }
                continue
            }
            guard t.name.hasSuffix(downSuffix) else {
                throw ScalpelError.invalid(file: ckpt.path, tensor: t.name, reason: "is not a kohya LoRA key (lora_down.weight, lora_up.weight, alpha); other LyCORIS kinds (LoHa hada_*, LoKr lokr_*, DoRA dora_scale) are read from PEFT folders only")
            }
            let prefix = String(t.name.dropLast(downSuffix.count))
            guard let up = ckpt.info(named: prefix + upSuffix) else {
                throw ScalpelError.malformed(file: ckpt.path, tensor: t.name, reason: "has no matching \(prefix + upSuffix)")
            }
            guard t.shape.count == 2, up.shape.count == 2 else {
                throw ScalpelError.invalid(file: ckpt.path, tensor: t.name, reason: "LoRA factors of shapes \(t.shape) and \(up.shape): only linear (2-D) kohya LoRAs are read, not convolutions")
            }
            guard up.shape[1] == t.shape[0] else {
                throw ScalpelError.malformed(file: ckpt.path, tensor: up.name, reason: "shape \(up.shape) does not chain with lora_down of shape \(t.shape)")
            }
            let rank = t.shape[0]
            var alpha = Double(rank)
            if let a = ckpt.info(named: prefix + alphaSuffix) {
                guard a.elementCount == 1 else {
                    throw ScalpelError.malformed(file: ckpt.path, tensor: a.name, reason: "has shape \(a.shape), expected a scalar")
                }
                alpha = Double(try FloatConversion.floats(try ckpt.view(a.name))[0])
            }
            let path = recorded[prefix] ?? prefix
            modules.append(LoRAModule(
                path: path, kind: .linear, weightName: path + ".weight", aName: t.name, bName: up.name, biasName: nil,
                magnitudeName: nil, rank: rank, alpha: alpha, scaling: alpha / Double(rank),
                productShape: [up.shape[0], t.shape[1]], transposed: false))
        }
        return modules
    }

    /// `scalpel_module_paths` of a file Scalpel wrote (empty otherwise).
    static func recordedPaths(_ ckpt: Checkpoint) -> [String: String] {
        guard let text = ckpt.metadata[modulePathsKey]?.stringValue,
              let json = try? JSONParser.parse(text), let object = json.objectValue else { return [:] }
        var out: [String: String] = [:]
        for (k, v) in object { if let s = v.stringValue { out[k] = s } }
        return out
    }

    /// Reads a `--map` file: a JSON object from kohya prefix to module path (or base tensor name; a
    /// trailing ".weight" is dropped).
    public static func readMap(_ path: String) throws -> [String: String] {
        let json: JSONValue
        do { json = try JSONParser.parse(try readSmallFile(path)) } catch let e as JSONParser.Failure {
            throw ScalpelError.malformed(file: path, tensor: nil, reason: e.description)
        }
        guard let object = json.objectValue else {
            throw ScalpelError.malformed(file: path, tensor: nil, reason: "a name map is a JSON object from kohya prefix to module path")
        }
        var out: [String: String] = [:]
        for (k, v) in object {
            guard let s = v.stringValue else {
                throw ScalpelError.malformed(file: path, tensor: k, reason: "maps to \(v), not a string")
            }
            out[k] = s.hasSuffix(".weight") ? String(s.dropLast(7)) : s
        }
        return out
    }

    /// The module path of each kohya prefix: `map` first, then the built-in mapping against the base's
    /// `<module>.weight` tensors (the prefix without its marker equals the module path with dots as
    /// underscores), else unchanged. Ambiguous built-in matches are an error.
    public static func modulePaths(for prefixes: [String], base: Checkpoint?, map: [String: String]) throws -> [String: String] {
        var byKey: [String: [String]] = [:]
        for t in base?.tensors ?? [] where t.name.hasSuffix(".weight") {
            let module = String(t.name.dropLast(7))
            byKey[module.replacingOccurrences(of: ".", with: "_"), default: []].append(module)
        }
        var out: [String: String] = [:]
        for p in prefixes {
            if let m = map[p] {
                out[p] = m
                continue
            }
            let candidates = [p] + markers.filter { p.hasPrefix($0) }.map { String(p.dropFirst($0.count)) }
            guard let key = candidates.first(where: { byKey[$0] != nil }), let modules = byKey[key] else { continue }
            guard modules.count == 1 else {
                throw ScalpelError.invalid(file: base?.path, tensor: p, reason: "matches several base modules (\(modules.joined(separator: ", "))): give the mapping with --map")
            }
            out[p] = modules[0]
        }
        return out
    }
}

extension LoRAAdapter {
    /// A kohya adapter with module paths and target names resolved (`KohyaLoRA.modulePaths`); other
    /// adapters are returned unchanged. Modules that resolve to nothing keep their prefix as the path
    /// (a merge then reports them as missing from the base).
    public func resolvingKohyaNames(base: Checkpoint?, map: [String: String]) throws -> LoRAAdapter {
        guard family == .kohya else { return self }
        let paths = try KohyaLoRA.modulePaths(for: modules.map(\.path), base: base, map: map)
        var copy = LoRAAdapter(checkpoint: checkpoint, config: config, modules: modules.map { m in
            var m = m
            if let p = paths[m.path] {
                m.path = p
                m.weightName = p + ".weight"
            }
            return m
        }, replacements: replacements)
        copy.family = .kohya
        return copy
    }
}
