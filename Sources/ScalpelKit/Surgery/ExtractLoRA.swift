import Dispatch
import Foundation

/// LoRA extraction from a full fine-tune: for each changed 2-D weight, dW = tuned - base is factored by a
/// truncated SVD into B (out x r) and A (r x in) with B A ≈ dW.
public enum ExtractLoRA {
    /// The output container.
    public enum OutputFormat: String, Sendable, CaseIterable {
        /// A PEFT adapter folder.
        case peft
        /// A llama.cpp GGUF LoRA file.
        case gguf
    }

    public struct Options: Sendable {
        /// How each tensor's rank is chosen.
        public var rule: RankRule = .fixed(16)
        /// Cap on every rank.
        public var maxRank = Int.max
        public var svd = RandomizedSVDOptions()
        /// Full sgesdd instead of the randomized SVD.
        public var exact = false
        public var split = LoRAFactorSplit.intoB
        /// lora_alpha to declare; nil declares alpha = r (scaling 1). B is compensated so B A stays dW.
        public var alpha: Double?
        /// dtype of the factors; nil: the dtype holding most of the base's decomposed weights.
        public var dtype: DType?
        /// Which 2-D tensors are decomposed (default: linear weights; embeddings with includeEmbeddings).
        public var selection = TensorSelection()
        /// Store changed tensors that are not decomposed as full tensors (modules_to_save).
        public var saveFull = false
        public var format = OutputFormat.peft
        /// base_model_name_or_path for the config (default: the base path).
        public var baseID: String?

        public init() {}
    }

    /// What happened to one tensor.
    public struct TensorResult: Sendable {
        public var name: String
        public var shape: [Int]
        /// decomposed, unchanged, changed (not decomposed), saved (full), shape-mismatch, missing.
        public var status: String
        public var rank = 0
        /// ||dW||_F^2.
        public var deltaEnergy = 0.0
        /// Fraction of ||dW||_F^2 the factors keep.
        public var keptEnergy = 0.0
        /// ||dW - B A||_F / ||dW||_F.
        public var relativeError = 0.0
        /// ||dW||_F / ||W_base||_F.
        public var relativeChange = 0.0
        public var seconds = 0.0
        public var detail: String?

        public init(name: String, shape: [Int], status: String, detail: String? = nil) {
            self.name = name
            self.shape = shape
            self.status = status
            self.detail = detail
        }
    }

    /// The extracted adapter, ready to write, and the per-tensor results.
    public struct Result {
        public var tensors: [OutputTensor]
        public var config: AdapterConfig?
        public var metadata: Metadata
        public var results: [TensorResult]
        public var adapterParameters: Int
        public var adapterBytes: Int
    }

    /// Extracts the adapter. SVDs run one tensor at a time (OpenBLAS threads inside); the factors, small,
    /// are kept until written, and each delta is dropped as soon as it is factored.
    public static func run(base: Checkpoint, tuned: Checkpoint, options: Options, log: (TensorResult) -> Void = { _ in }) throws -> Result {
        try options.rule.validate()
        var results: [TensorResult] = []
        var factors: [(name: String, f: LoRAFactors, scale: Float, embedding: Bool)] = []
        var full: [(name: String, tensor: Int)] = []
        var bytesByDType: [DType: Int] = [:]
        for (i, t) in base.tensors.enumerated() {
            var r = TensorResult(name: t.name, shape: t.shape, status: "unchanged")
            guard let j = tuned.index(of: t.name) else {
                r.status = "missing"
                r.detail = "not in the tuned checkpoint"
                results.append(r)
                continue
            }
            let u = tuned.tensors[j]
            guard u.shape == t.shape else {
                r.status = "shape-mismatch"
                r.detail = "base \(t.shape) vs tuned \(u.shape)"
                results.append(r)
                log(r)
                continue
            }
            let numeric = { (x: TensorInfo) -> Bool in
                if case .block = x.type { return true }
                return x.type.dtype?.isComputableFloat ?? false
            }
            guard numeric(t), numeric(u) else {
                let same = try base.view(at: i).bytes.elementsEqual(try tuned.view(at: j).bytes)
                r.status = same ? "unchanged" : "changed"
                if !same { r.detail = "not a float tensor" }
                results.append(r)
                continue
            }
            let start = DispatchTime.now()
            let w = try FloatConversion.floats(try base.view(at: i))
            var d = try FloatConversion.floats(try tuned.view(at: j))
            base.release(t.name)
            tuned.release(u.name)
            var energy = 0.0, baseEnergy = 0.0
            for k in 0..<d.count {
                d[k] -= w[k]
                energy += Double(d[k]) * Double(d[k])
                baseEnergy += Double(w[k]) * Double(w[k])
            }
            r.deltaEnergy = energy
            r.relativeChange = baseEnergy > 0 ? (energy / baseEnergy).squareRoot() : (energy > 0 ? .infinity : 0)
            guard energy.isFinite else {
                throw ScalpelError.invalid(file: tuned.path, tensor: t.name,
                                           reason: "tuned - base holds NaN or infinite values (in the base or the tuned tensor)")
            }
            guard energy > 0 else { results.append(r); continue }
            let decomposed = t.shape.count == 2 && options.selection.selects(t)
            guard decomposed else {
                r.status = options.saveFull ? "saved" : "changed"
                r.keptEnergy = options.saveFull ? 1 : 0
                r.relativeError = options.saveFull ? 0 : 1
                if options.saveFull { full.append((t.name, j)) }
                results.append(r)
                log(r)
                continue
            }
            let m = Matrix(rows: t.shape[0], cols: t.shape[1], values: d)
            d = []
            let svd: SingularValueDecomposition
            if options.exact {
                svd = try Linalg.exactSVD(m).truncated(rule: options.rule, maxRank: min(options.maxRank, t.shape[0], t.shape[1]))
            } else {
                svd = try RandomizedSVD.decompose(m, rule: options.rule, maxRank: options.maxRank, options: options.svd)
            }
            // An embedding's PEFT delta is (B A)^T: factor dW^T, i.e. swap and transpose the factors.
            // llama.cpp flips token_embd's pair (lora_a [vocab, r], lora_b [dim, r]); that layout is not
            // written yet, so it is refused rather than written in a form llama.cpp rejects.
            if options.format == .gguf && TensorSelection.isEmbedding(t.name) {
                throw ScalpelError.invalid(file: base.path, tensor: t.name, reason: "llama.cpp's flipped token_embd LoRA layout is not supported yet: use --embeddings skip (the default) with --format gguf")
            }
            let embedding = TensorSelection.isEmbedding(t.name)
            let f = embedding ? svd.loraFactors(split: options.split).transposed : svd.loraFactors(split: options.split)
            r.status = "decomposed"
            r.rank = f.rank
            r.relativeError = svd.relativeError
            r.keptEnergy = 1 - r.relativeError * r.relativeError
            r.seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
            let alpha = options.alpha ?? Double(f.rank)
            factors.append((t.name, f, Float(Double(f.rank) / alpha), embedding))
            if let dt = t.type.dtype { bytesByDType[dt, default: 0] += t.byteCount }
            results.append(r)
            log(r)
        }
        guard !factors.isEmpty else {
            let reason = results.contains { $0.status == "changed" || $0.status == "saved" }
                ? "no selected 2-D tensor changed (the changed ones are not decomposed; --save-full alone makes no loadable adapter: PEFT needs at least one LoRA module)"
                : "no tensor differs between the base and the tuned checkpoint that could be decomposed"
            throw ScalpelError.invalid(file: tuned.path, tensor: nil, reason: "nothing to extract: " + reason)
        }
        for t in tuned.tensors where base.index(of: t.name) == nil {
            results.append(TensorResult(name: t.name, shape: t.shape, status: "missing", detail: "only in the tuned checkpoint"))
        }
        let dtype = options.dtype ?? bytesByDType.filter { $0.key.isComputableFloat }.max { $0.value < $1.value }?.key ?? .f32
        let layout = try AdapterLayout(format: options.format, factors: factors, full: full, base: base, tuned: tuned, options: options, dtype: dtype)
        return Result(tensors: layout.tensors, config: layout.config, metadata: layout.metadata, results: results,
                      adapterParameters: layout.tensors.reduce(0) { $0 + ($1.shape.checkedProduct() ?? 0) },
                      adapterBytes: layout.tensors.reduce(0) { $0 + $1.byteCount })
    }

    /// Writes the result: a PEFT adapter folder, or a GGUF LoRA file.
    public static func write(_ result: Result, to path: String, format: OutputFormat) throws {
        switch format {
        case .peft:
            try PEFTAdapterWriter.write(tensors: result.tensors, config: result.config!, to: path)
        case .gguf:
            try GGUFWriter.write(result.tensors, metadata: result.metadata, to: path)
        }
    }
}
