"""`inferform bench`: measure a served endpoint, set it beside the plan's prediction, optionally calibrate."""
