/// The adapter families Scalpel reads: PEFT's `peft_type` values, plus kohya/LyCORIS LoRA files.
public enum AdapterFamily: String, Sendable, CaseIterable {
    /// LoRA (also DoRA and rsLoRA): `W += s * B @ A`.
    case lora = "LORA"
    /// AdaLoRA: `W += B @ (A * E) * scaling / ranknum` (SVD-shaped triplets, some pruned).
    case adalora = "ADALORA"
    /// (IA)^3: `W *= l`, by output rows (attention targets) or input columns (`feedforward_modules`).
    case ia3 = "IA3"
    /// LoHa: `W += (w1_a @ w1_b) * (w2_a @ w2_b) * alpha / r` (Hadamard product).
    case loha = "LOHA"
    /// LoKr: `W += kron(w1, w2) * alpha / r`, w1 and w2 full or factored.
    case lokr = "LOKR"
    /// Prompt tuning: learned virtual-token embeddings (not mergeable).
    case promptTuning = "PROMPT_TUNING"
    /// Prefix tuning: learned per-layer key/value prefixes (not mergeable).
    case prefixTuning = "PREFIX_TUNING"
    /// P-tuning: virtual-token embeddings from a prompt encoder (not mergeable).
    case pTuning = "P_TUNING"
    /// A kohya / LyCORIS LoRA file (`<prefix>.lora_down.weight`, `.lora_up.weight`, `.alpha`).
    case kohya = "KOHYA"

    /// The family of a PEFT `peft_type` (nil for types Scalpel does not read, and for "KOHYA").
    public init?(peftType: String) {
        guard let f = AdapterFamily(rawValue: peftType), f != .kohya else { return nil }
        self = f
    }

    /// The PEFT types Scalpel reads, for messages.
    public static var peftTypes: [String] { allCases.filter { $0 != .kohya }.map(\.rawValue) }

    /// True for the prompt-learning types, which add virtual tokens instead of changing weights.
    public var isPromptLearning: Bool { self == .promptTuning || self == .prefixTuning || self == .pTuning }

    /// True when the family changes weights by adding an update that does not depend on them.
    public var isAdditive: Bool { !isPromptLearning && self != .ia3 }

    /// A short human name ("LoHa").
    public var displayName: String {
        switch self {
        case .lora: return "LoRA"
        case .adalora: return "AdaLoRA"
        case .ia3: return "IA3"
        case .loha: return "LoHa"
        case .lokr: return "LoKr"
        case .promptTuning: return "prompt tuning"
        case .prefixTuning: return "prefix tuning"
        case .pTuning: return "P-tuning"
        case .kohya: return "kohya LoRA"
        }
    }
}
