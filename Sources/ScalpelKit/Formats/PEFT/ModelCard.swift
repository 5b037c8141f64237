/// The README.md model card written into adapter folders, with the YAML front matter that Hugging
/// Face's hub and PEFT's `save_pretrained` put there (`base_model`, `library_name: peft`, tags).
public enum ModelCard {
    /// A card titled `title`, naming `baseModel` when known, with `lines` as its body.
    public static func adapter(title: String, baseModel: String?, lines: [String]) -> String {
        var front = ["---"]
        if let baseModel { front.append("base_model: \(yamlString(baseModel))") }
        front += ["library_name: peft", "tags:", "- lora", "- scalpel", "---", ""]
        return (front + ["# \(title)", ""] + lines).joined(separator: "\n") + "\n"
    }

    /// The PEFT `task_type` for a base model folder's `config.json` `architectures` (CAUSAL_LM for
    /// `*ForCausalLM`, SEQ_2_SEQ_LM, SEQ_CLS, TOKEN_CLS, QUESTION_ANS, FEATURE_EXTRACTION for bare
    /// encoders), or nil when the folder has no config or the architecture says nothing.
    public static func taskType(modelPath: String) -> String? {
        let folder = ModelFolder(checkpointPath: modelPath)
        guard folder.companionFiles.contains("config.json"),
              let text = try? readSmallFile(folder.folder + "/config.json"), let json = try? JSONParser.parse(text),
              case .array(let archs)? = json["architectures"], let arch = archs.first?.stringValue else { return nil }
        let rules: [(String, String)] = [("ForCausalLM", "CAUSAL_LM"), ("ForConditionalGeneration", "SEQ_2_SEQ_LM"),
                                         ("ForSequenceClassification", "SEQ_CLS"), ("ForTokenClassification", "TOKEN_CLS"),
                                         ("ForQuestionAnswering", "QUESTION_ANS"), ("Model", "FEATURE_EXTRACTION")]
        return rules.first { arch.hasSuffix($0.0) }?.1
    }

    private static func yamlString(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
