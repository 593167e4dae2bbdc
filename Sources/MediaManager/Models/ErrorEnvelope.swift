/// The error body of every REST call: `{message, details: {applicationError | validationError}}`.
public struct ErrorEnvelope: Sendable, Hashable, Codable {
    public struct ApplicationError: Sendable, Hashable, Codable {
        public var code: String
        public var description: String
        public var data: JSONValue?
        public init(code: String, description: String, data: JSONValue? = nil) {
            self.code = code
            self.description = description
            self.data = data
        }
    }

    public struct FieldViolation: Sendable, Hashable, Codable {
        public var field: String
        public var description: String
        public var violatedRule: String?
        public init(field: String, description: String, violatedRule: String? = nil) {
            self.field = field
            self.description = description
            self.violatedRule = violatedRule
        }
    }

    public struct ValidationError: Sendable, Hashable, Codable {
        public var fieldViolations: [FieldViolation]
        public init(fieldViolations: [FieldViolation]) { self.fieldViolations = fieldViolations }
    }

    public struct Details: Sendable, Hashable, Codable {
        public var applicationError: ApplicationError?
        public var validationError: ValidationError?
        public init(applicationError: ApplicationError? = nil, validationError: ValidationError? = nil) {
            self.applicationError = applicationError
            self.validationError = validationError
        }
    }

    public var message: String
    public var details: Details

    public init(message: String, details: Details = Details()) {
        self.message = message
        self.details = details
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.message = try c.decodeIfPresent(String.self, forKey: .message) ?? ""
        self.details = try c.decodeIfPresent(Details.self, forKey: .details) ?? Details()
    }

    /// The application error code, or the first violated rule, if any.
    public var code: String? {
        details.applicationError?.code ?? details.validationError?.fieldViolations.first?.violatedRule
    }
}
