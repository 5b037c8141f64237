/// One low-rank update of an adapter: the factors of a module and how their product lands on the base.
///
/// The product `P = B @ A` has shape `productShape = [rows, cols]` = `[B.rows, A.cols]` (PEFT's
/// `lora_B.weight` [out, r] times `lora_A.weight` [r, in]). The base weight receives `scaling * P`, or its
/// transpose when `transposed` (GPT-2's Conv1D with `fan_in_fan_out`, and embeddings, whose
/// `lora_embedding_B @ lora_embedding_A` is [dim, vocab] for a [vocab, dim] table). A DoRA magnitude and
/// a `lora_B` bias are indexed by the rows of `P` (the output features).
public struct LoRAModule: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// `lora_A.weight` / `lora_B.weight` (and GGUF `.lora_a` / `.lora_b`).
        case linear
        /// `lora_embedding_A` / `lora_embedding_B`.
        case embedding
    }

    /// The module path: PEFT's name of the layer ("model.layers.0.self_attn.q_proj"), or for a GGUF LoRA
    /// the base tensor name without ".weight".
    public var path: String
    public var kind: Kind
    /// The base tensor the product is added to, as the adapter names it ("<path>.weight").
    public var weightName: String
    /// Adapter tensor names of the factors: A is [rank, cols], B is [rows, rank].
    public var aName: String
    public var bName: String
    /// `lora_B.bias` [rows], added to the base bias times `scaling` (PEFT's `lora_bias`).
    public var biasName: String?
    /// DoRA magnitude [rows].
    public var magnitudeName: String?
    public var rank: Int
    public var alpha: Double
    /// The factor applied to `B @ A`: alpha / rank, alpha / sqrt(rank) with rsLoRA, 1 for a GGUF LoRA
    /// with alpha 0.
    public var scaling: Double
    /// `[rows, cols]` of `B @ A`.
    public var productShape: [Int]
    /// The base weight holds the transpose of the product.
    public var transposed: Bool

    /// The shape the base weight must have.
    public var baseShape: [Int] { transposed ? [productShape[1], productShape[0]] : productShape }

    /// The base tensor a `lora_B` bias is added to.
    public var biasTargetName: String {
        weightName.hasSuffix(".weight") ? String(weightName.dropLast(7)) + ".bias" : weightName + ".bias"
    }
}
