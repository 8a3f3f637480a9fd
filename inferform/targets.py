"""Target kinds that run on an instance apply creates: shared by the setup schema and the Plan, light on purpose
(`inferform validate` imports it and must not pay for the Plan's models)."""

CLOUD_KINDS = ("aws-spot", "aws-on-demand", "free-trial")
