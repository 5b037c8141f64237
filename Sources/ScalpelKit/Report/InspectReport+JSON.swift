extension InspectReport {
    /// The `--json` object. Keys: format, compressed, tensor_count, parameter_count, file_bytes,
    /// data_bytes, bits_per_parameter, by_dtype, group_by, groups, metadata, tensors, and adapter for
    /// PEFT folders. Shapes are row-major; byte and parameter counts are exact integers.
    public var json: JSONValue {
        func totalsJSON(_ t: TensorTotals) -> [(String, JSONValue)] {
            [("tensors", .int(t.tensors)), ("parameters", .int(t.parameters)), ("bytes", .int(t.bytes))]
        }
        var pairs: [(String, JSONValue)] = [
            ("path", .string(path)),
            ("format", .string(format.rawValue)),
            ("compressed", .bool(compressed)),
            ("tensor_count", .int(totals.tensors)),
            ("parameter_count", .int(totals.parameters)),
            ("file_bytes", .int(fileBytes)),
            ("data_bytes", .int(totals.bytes)),
            ("bits_per_parameter", .double(bitsPerParameter)),
            ("by_dtype", .object(byDType.map { ($0.0, .object(totalsJSON($0.1))) })),
            ("logical_parameter_count", .int(logicalParameters)),
            ("quantized_weights", .object(quantizedWeights.map { ($0.0, .object(totalsJSON($0.1))) })),
            ("group_by", .string(grouping.rawValue)),
            ("groups", .array(groups.map { .object([("name", .string($0.0))] + totalsJSON($0.1)) })),
            ("metadata", metadata.json),
            ("tensors", .array(tensors.map { t, s in
                var o: [(String, JSONValue)] = [
                    ("name", .string(t.name)), ("dtype", .string(t.type.description)),
                    ("shape", .array(t.shape.map { .int($0) })), ("bytes", .int(t.byteCount)), ("offset", .int(t.offset)),
                ]
                if let s {
                    o += [("min", .double(s.min)), ("max", .double(s.max)), ("mean", .double(s.mean)),
                          ("std", .double(s.std)), ("mean_abs", .double(s.meanAbs)),
                          ("zero_fraction", .double(s.zeroFraction)), ("nan_count", .int(s.nanCount)),
                          ("inf_count", .int(s.infCount))]
                }
                return .object(o)
            })),
        ]
        if let a = adapter {
            pairs.append(("adapter", .object([
                ("peft_type", .string(a.peftType)),
                ("r", .int(a.r)),
                ("lora_alpha", .double(a.loraAlpha)),
                ("scaling", .double(a.loraAlpha / (a.useRSLoRA ? Double(a.r).squareRoot() : Double(a.r)))),
                ("use_rslora", .bool(a.useRSLoRA)),
                ("use_dora", .bool(a.useDoRA)),
                ("target_modules", a.targetModules),
                ("rank_pattern", .object(a.rankPattern.map { ($0.0, .int($0.1)) })),
                ("alpha_pattern", .object(a.alphaPattern.map { ($0.0, .double($0.1)) })),
                ("ranks", .object(adapterRanks.map { (String($0.0), .int($0.1)) })),
                ("base_model_name_or_path", a.json["base_model_name_or_path"] ?? .null),
            ] + (adapterSummary?.jsonPairs ?? []))))
        } else if let summary = adapterSummary {
            pairs.append(("adapter", .object([("peft_type", .null), ("ranks", .object(summary.rankHistogram.map { (String($0.0), .int($0.1)) }))] + summary.jsonPairs)))
        }
        return .object(pairs)
    }
}
