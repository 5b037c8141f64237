/// One module of a stacked adapter: where it is, its geometry, and the input modules that update it.
struct StackModule: Sendable {
    /// An input adapter's module and how it is weighted.
    struct Member: Sendable {
        let adapter: Checkpoint
        /// Position of the adapter in the input list (DARE's masks depend on it).
        let adapterIndex: Int
        let module: LoRAModule
        let weight: Double

        /// `weight * scaling`: the factor of this member's `B @ A` in the combined update.
        var factor: Double { weight * module.scaling }
    }

    let path: String
    let kind: LoRAModule.Kind
    /// `[rows, cols]` of `B @ A`.
    let productShape: [Int]
    let transposed: Bool
    private(set) var members: [Member]

    var rows: Int { productShape[0] }
    var cols: Int { productShape[1] }
    var hasBias: Bool { members.contains { $0.module.biasName != nil } }

    /// The union of the inputs' modules, in order of first appearance. Modules present in only some
    /// inputs are kept with the members that have them.
    /// - Throws: `ScalpelError.invalid` when two inputs give the same module path different kinds, shapes
    ///   or orientations.
    static func union(_ inputs: [WeightedAdapter]) throws -> [StackModule] {
        var modules: [StackModule] = []
        var index: [String: Int] = [:]
        for (k, input) in inputs.enumerated() {
            for m in input.adapter.modules {
                let member = Member(adapter: input.adapter.checkpoint, adapterIndex: k, module: m, weight: input.weight)
                guard let i = index[m.path] else {
                    index[m.path] = modules.count
                    modules.append(StackModule(path: m.path, kind: m.kind, productShape: m.productShape, transposed: m.transposed, members: [member]))
                    continue
                }
                let first = modules[i]
                guard first.kind == m.kind, first.productShape == m.productShape, first.transposed == m.transposed else {
                    throw ScalpelError.invalid(file: input.adapter.path, tensor: m.aName, reason: "module \(m.path) is a \(m.kind) update of shape \(m.productShape)\(m.transposed ? " (transposed)" : "") here but a \(first.kind) update of shape \(first.productShape)\(first.transposed ? " (transposed)" : "") in \(first.members[0].adapter.path)")
                }
                modules[i].members.append(member)
            }
        }
        return modules
    }

    /// `sum_i weight_i * scaling_i * lora_B.bias_i` over the members that have a bias (zeros when none).
    func combinedBias() throws -> [Float] {
        var out = [Float](repeating: 0, count: rows)
        for m in members {
            guard let name = m.module.biasName else { continue }
            let bias = try FloatConversion.floats(try m.adapter.view(name))
            out.withUnsafeMutableBufferPointer { MergeKernels.addScaled($0, bias, scale: Float(m.factor)) }
        }
        return out
    }
}
