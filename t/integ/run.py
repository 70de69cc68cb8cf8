#!/usr/bin/env python3
"""t/integ/run.py — runs every t/integ/test_*.py with unittest and prints one
TAP-like line per test, then "# integ: N passed, N failed".  Exit 1 on any
failure.  Args: optional test-file name filters."""
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class Result(unittest.TextTestResult):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.n = 0
        self.passed = 0
        self.t0 = 0

    def startTest(self, test):
        self.t0 = time.time()
        super().startTest(test)

    def _line(self, ok, test, extra=""):
        self.n += 1
        name = "%s.%s" % (test.__class__.__module__, test._testMethodName)
        print("%sok %d - %s (%.1fs)%s" % ("" if ok else "not ", self.n, name,
                                          time.time() - self.t0, extra), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        self._line(True, test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(False, test)
        print("# " + self._exc_info_to_string(err, test).replace("\n", "\n# "), flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        self._line(False, test)
        print("# " + self._exc_info_to_string(err, test).replace("\n", "\n# "), flush=True)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(False, test, " # SKIP %s (counted as a failure)" % reason)


def main():
    filters = sys.argv[1:]
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for name in sorted(os.listdir(HERE)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        if filters and not any(f in name for f in filters):
            continue
        suite.addTests(loader.loadTestsFromName(name[:-3]))
    runner = unittest.TextTestRunner(resultclass=Result, stream=open(os.devnull, "w"), verbosity=0)
    res = runner.run(suite)
    failed = len(res.failures) + len(res.errors) + len(res.skipped)
    print("# integ: %d passed, %d failed" % (res.passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
