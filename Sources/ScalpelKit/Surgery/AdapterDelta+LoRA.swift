import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension LoRAAdapter {
    /// Reads a PEFT adapter of another family than LORA as LoRA modules.
    ///
    /// Each additive module (AdaLoRA, LoHa, LoKr) is turned into its exact factors `delta = B' @ A'`
    /// (`AdapterDeltaModule.factors`, scale folded into A', so the module's scaling is 1). The factors and
    /// the adapter's tensors still needed (IA3 vectors, modules_to_save copies) are written to an unlinked
    /// temporary safetensors file that backs the returned adapter's `checkpoint` (its `path` stays the
    /// adapter folder's); an adapter without additive modules (IA3) keeps its own checkpoint. IA3 modules
    /// go to `scaledModules`.
    /// - Throws: `ScalpelError.invalid` for a prompt-learning adapter (nothing to merge), and the reader's
    ///   errors.
    init(family checkpoint: Checkpoint, config: AdapterConfig) throws {
        let reader = try AdapterFamilyReader(checkpoint, config: config)
        if let p = reader.promptLearning {
            throw ScalpelError.invalid(file: checkpoint.path, tensor: nil, reason: "is a \(reader.family.rawValue) adapter (\(p.virtualTokens) virtual tokens, \(p.parameters) parameters): prompt learning adds virtual tokens to the input and changes no weights, so it cannot be merged, stacked, resized or converted")
        }
        // Kept tensors: full replacements and IA3 vectors (the family's factors are replaced by LoRA factors).
        var kept = Set(reader.replacements.map(\.source))
        for m in reader.modules { if case .scaleVector(let name, _) = m.rule { kept.insert(name) } }
        var outputs = checkpoint.tensors.indices.filter { kept.contains(checkpoint.tensors[$0].name) }.map { i in
            OutputTensor(name: checkpoint.tensors[i].name, type: checkpoint.tensors[i].type, shape: checkpoint.tensors[i].shape,
                         content: .filling { out in out.copyMemory(from: try checkpoint.view(at: i).bytes) })
        }
        var modules: [LoRAModule] = []
        var scaled: [AdapterDeltaModule] = []
        for m in reader.modules {
            guard m.family.isAdditive else {
                scaled.append(m)
                continue
            }
            let f = try m.factors(checkpoint)
            let aName = PEFTAdapterWriter.aKey(m.path), bName = PEFTAdapterWriter.bKey(m.path)
            guard checkpoint.info(named: aName) == nil || m.family == .adalora else {
                throw ScalpelError.malformed(file: checkpoint.path, tensor: aName, reason: "a \(m.family.displayName) adapter holds a LoRA tensor")
            }
            let materialName = { (n: String) in "scalpel.materialized." + n }
            outputs.append(OutputTensor(name: materialName(aName), type: .plain(.f32), shape: [f.a.rows, f.a.cols],
                                        content: .filling { out in f.a.values.withUnsafeBytes { out.copyMemory(from: $0) } }))
            outputs.append(OutputTensor(name: materialName(bName), type: .plain(.f32), shape: [f.b.rows, f.b.cols],
                                        content: .filling { out in f.b.values.withUnsafeBytes { out.copyMemory(from: $0) } }))
            modules.append(LoRAModule(
                path: m.path, kind: .linear, weightName: m.weightName, aName: materialName(aName), bName: materialName(bName),
                biasName: nil, magnitudeName: nil, rank: f.rank, alpha: Double(f.rank), scaling: 1,
                productShape: m.productShape, transposed: m.transposed))
        }
        let backing = modules.isEmpty ? checkpoint : try LoRAAdapter.temporaryCheckpoint(outputs, like: checkpoint)
        self.init(checkpoint: backing, config: config, modules: modules, replacements: reader.replacements)
        self.family = reader.family
        self.scaledModules = scaled
        self.familyModules = reader.modules
    }

    /// An adapter from its parts (kohya name resolution, materialized families).
    init(checkpoint: Checkpoint, config: AdapterConfig?, modules: [LoRAModule], replacements: [Replacement]) {
        self.checkpoint = checkpoint
        self.config = config
        self.modules = modules
        self.replacements = replacements
    }

    /// `tensors` written to an unlinked temporary safetensors file, opened as a checkpoint that keeps the
    /// path, format, config and file size of `original`.
    static func temporaryCheckpoint(_ tensors: [OutputTensor], like original: Checkpoint) throws -> Checkpoint {
        var template = Array((NSTemporaryDirectory() + "/scalpel-adapter-XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw ScalpelError.io(file: NSTemporaryDirectory(), reason: "cannot create a temporary folder: \(String(cString: strerror(errno)))")
        }
        let folder = String(cString: template.map { UInt8(bitPattern: $0) } + [0])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/factors.safetensors"
        _ = try Pipeline.write(Plan(destination: try Destination(path: path), tensors: tensors, inputs: []))
        let inner = try CheckpointReader.openFile(path, headerOnly: false)
        return Checkpoint(path: original.path, format: original.format, compressed: original.compressed, tensors: inner.tensors,
                          locations: inner.locations, files: inner.files, metadata: original.metadata,
                          fileBytes: original.fileBytes, adapterConfig: original.adapterConfig)
    }
}
