"""guardcli: an offline GuardReasoner guard for the command line.

The runtime package stays torch-free; see tests/test_import_contract.py.
"""

__version__ = "0.1.0"
