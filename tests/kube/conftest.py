"""The kube tests use the emulator's public pytest plugin, exactly as users enable it.

``pytest_plugins`` is only honoured in a rootdir conftest, so this non-root conftest imports the
plugin's fixtures instead; a user's project would write
``pytest_plugins = ["mlrelay.testing.pytest_plugin"]`` in its top-level conftest.
"""

from mlrelay.testing.pytest_plugin import kube_cluster, kube_emulator, kubeconfig_path  # noqa: F401
