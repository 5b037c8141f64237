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
    public struct Result: Sendable {
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
            do {
                if options.exact {
                    svd = try Linalg.exactSVD(m).truncated(rule: options.rule, maxRank: min(options.maxRank, t.shape[0], t.shape[1]))
                } else {
                    svd = try RandomizedSVD.decompose(m, rule: options.rule, maxRank: options.maxRank, options: options.svd)
                }
            } catch let e as ScalpelError {
                throw e.naming(file: tuned.path, tensor: t.name)  // LAPACK failures name no file themselves
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

    /// Extracts the adapter (`run`) and plans writing it to `path`: a PEFT adapter folder with
    /// `adapter_config.json` (its `task_type` from the base folder's config.json when it says) and a
    /// README.md model card, or a GGUF LoRA file. Warns when a `--max-error` or `--energy` target was
    /// missed because of `maxRank`.
    public static func plan(base: Checkpoint, tuned: Checkpoint, options: Options, to path: String,
                            log: (TensorResult) -> Void = { _ in }) throws -> Plan {
        guard base.tensors.contains(where: { tuned.index(of: $0.name) != nil }) else {
            throw ScalpelError.invalid(file: tuned.path, tensor: nil, reason: "no tensor name is in both checkpoints (base has \(base.tensors.first?.name ?? "no tensors"), tuned has \(tuned.tensors.first?.name ?? "no tensors")): they are not the same model, or not named the same way")
        }
        var result = try run(base: base, tuned: tuned, options: options, log: log)
        let inputs = base.sourcePaths + tuned.sourcePaths
        var plan: Plan
        switch options.format {
        case .peft:
            var config = result.config!
            if let task = ModelCard.taskType(modelPath: base.path) { config.json = config.json.setting("task_type", to: .string(task)) }
            result.config = config
            let decomposed = result.results.filter { $0.status == "decomposed" }
            let card = ModelCard.adapter(title: "LoRA adapter extracted from a fine-tune",
                                         baseModel: config.json["base_model_name_or_path"]?.stringValue, lines: [
                "Made by `scalpel extract-lora` from the difference between `\(tuned.path)` and `\(base.path)`:",
                "\(decomposed.count) weights factored by truncated SVD, ranks \(decomposed.map(\.rank).min() ?? 0)-\(decomposed.map(\.rank).max() ?? 0);",
                "the factors keep \(Format.fixed(100 * result.keptShare, 2))% of the fine-tune's difference (Frobenius energy).",
            ])
            plan = try PEFTAdapterWriter.plan(tensors: result.tensors, config: config, to: path, inputs: inputs, modelCard: card)
        case .gguf:
            plan = Plan(destination: try Destination(path: path), tensors: result.tensors, metadata: result.metadata, inputs: inputs)
        }
        plan.warnings = missedTargetWarnings(result, options: options) + options.selection.warnings(names: base.tensors.map(\.name), file: base.path)
        let done = result
        plan.report = { _ in
            guard case .object(let fields) = done.json else { return Report(text: done.text, details: done) }
            return Report(text: done.text, fields: fields, details: done)
        }
        return plan
    }

    /// A warning when `--max-error` or `--energy` could not be met within `--max-rank`.
    static func missedTargetWarnings(_ result: Result, options: Options) -> [String] {
        let decomposed = result.results.filter { $0.status == "decomposed" }
        let missed: [TensorResult]
        let target: String
        switch options.rule {
        case .maxError(let e):
            missed = decomposed.filter { $0.relativeError > e * (1 + 1e-6) }
            target = "--max-error \(e)"
        case .energy(let f):
            missed = decomposed.filter { $0.keptEnergy < f * (1 - 1e-6) }
            target = "--energy \(f)"
        case .fixed:
            return []
        }
        guard let worst = missed.max(by: { $0.relativeError < $1.relativeError }) else { return [] }
        return ["\(Format.counted(missed.count, "tensor")) missed \(target) at the rank cap (--max-rank \(options.maxRank == Int.max ? "none" : String(options.maxRank))): worst relative error \(Format.fixed(worst.relativeError, 4)) in \(worst.name) at rank \(worst.rank)"]
    }
}
