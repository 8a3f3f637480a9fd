"""Apply: make a plan real (Ansible locally or over SSH; Pulumi for cloud resources) and remember it.

`runner` runs the shipped playbooks (roles/apply.yml, roles/destroy.yml) through ansible-runner; the roles decide
nothing a plan did not, so everything they need arrives as playbook variables (see roles/README.md).
"""

from inferform.apply.runner import HostStats, PlaybookResult, playbook_path, run_playbook

__all__ = ["HostStats", "PlaybookResult", "playbook_path", "run_playbook"]
