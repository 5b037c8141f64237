/// How an adapter's tensor names line up with a base checkpoint's.
///
/// PEFT names modules after the model class the adapter was trained on: an adapter trained on
/// `LlamaForCausalLM` targets `model.layers.0.self_attn.q_proj`, while a base saved from the bare
/// `LlamaModel` (or a sentence-transformers export) names the weight `layers.0.self_attn.q_proj.weight`;
/// the reverse happens too, and task models add their own first component (`bert.`, `transformer.`).
/// One rewrite is chosen per adapter, the one under which the most of its target names exist in the base
/// (the first listed wins ties): unchanged, without a leading `model.`, with `model.` added, or without
/// the first component.
struct MergeNameMapping: Equatable {
    enum Rewrite: Equatable {
        case unchanged
        case dropLeadingModel
        case addLeadingModel
        case dropFirstComponent
    }

    let rewrite: Rewrite

    /// The base name for an adapter-side name (nil when the rewrite does not apply to it).
    func baseName(_ name: String) -> String? {
        switch rewrite {
        case .unchanged: return name
        case .dropLeadingModel: return name.hasPrefix("model.") ? String(name.dropFirst(6)) : nil
        case .addLeadingModel: return "model." + name
        case .dropFirstComponent:
            guard let dot = name.firstIndex(of: ".") else { return nil }
            return String(name[name.index(after: dot)...])
        }
    }

    /// A description for summaries, or nil for the identity.
    var description: String? {
        switch rewrite {
        case .unchanged: return nil
        case .dropLeadingModel: return "names matched after dropping the leading \"model.\""
        case .addLeadingModel: return "names matched after adding a leading \"model.\""
        case .dropFirstComponent: return "names matched after dropping their first component"
        }
    }

    /// The rewrite under which the most of `names` exist in `base`.
    static func choose(for names: [String], in base: Checkpoint) -> MergeNameMapping {
        var best = MergeNameMapping(rewrite: .unchanged)
        var bestCount = -1
        for rewrite in [Rewrite.unchanged, .dropLeadingModel, .addLeadingModel, .dropFirstComponent] {
            let m = MergeNameMapping(rewrite: rewrite)
            let count = names.reduce(0) { $0 + (m.baseName($1).flatMap(base.info(named:)) != nil ? 1 : 0) }
            if count > bestCount {
                best = m
                bestCount = count
            }
            if count == names.count { break }
        }
        return best
    }
}
