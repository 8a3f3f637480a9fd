"""Apply: make a plan real (Ansible locally or over SSH; Pulumi for cloud resources) and remember it."""
