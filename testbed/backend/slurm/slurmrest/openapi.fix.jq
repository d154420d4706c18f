# Turns slurmrestd 22.05's own OpenAPI document (openapi.json, as served) into openapi.fixed.json, which the
# client is generated from. Each change makes the document say what the daemon really sends; without them
# the generated client fails to decode real answers (checked against slurmrestd 22.05.8 with
# openapi/v0.0.38 loaded).

# Every answer's meta.Slurm.version.{major,micro,minor} is declared a string and sent as an integer, so
# decoding any answer with meta failed.
.components.schemas["v0.0.38_meta"].properties.Slurm.properties.version.properties |= map_values(.type = "integer")

# An error answer (the "default" response) is declared a bare array of errors but sent as an object
# {meta, errors: [...]}, like every other answer.
| .components.schemas["v0.0.38_errors"] = {
    type: "object",
    description: "Slurm errors",
    properties: {
      meta: {"$ref": "#/components/schemas/v0.0.38_meta"},
      errors: {type: "array", items: {"$ref": "#/components/schemas/v0.0.38_error"}}
    }
  }

# An error carries fields the schema lacks: job submission names its number error_code (elsewhere it is
# error_number), and lookups add a description (the detail, e.g. "Unable to find JobId=9") and a source
# (the Slurm call that failed).
| .components.schemas["v0.0.38_error"].properties += {
    error_code: {type: "integer", description: "Slurm internal error number (job submission's name for error_number)"},
    description: {type: "string", description: "what failed, in detail"},
    source: {type: "string", description: "the Slurm call that failed"}
  }

# JSON only: every body is also declared as application/x-yaml, which would double each response type's
# fields and pull a YAML decoder into the client for nothing.
| walk(if type == "object" then del(.["application/x-yaml"]) else . end)
