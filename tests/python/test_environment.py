"""Environment values are parsed strictly (issue 24 item 6): bytes or a
number with K/M/G/T, with no whitespace, sign, other base or overflow, in
the documented range; anything else is a ValueError naming the variable (at
scope entry; OBJARENA_POISON when the scope is made), never a silent
default. Each case runs in a child: the values are read once, at the first
scope that accepts them."""
import pytest

BAD_RESERVE = [" -1", "\t-2", "-1", "+4G", "4G ", " 4G", "0x40000000", "4 G", "G", "4Q", "4GX",
               "1023M", "1073741823", "17T", "16385G", "99999999999999999999", "18446744073709551616",
               "16777216T", "1.5G", "1e9"]
BAD_WARM = ["-1", " 0", "0 ", "+1M", "0x100000", "1e6", "1M1", "65G", "18446744073709551615", "1.0"]
BAD_POISON = ["2", "yes", "true", "on", " 1", "1 ", "01", "-1", "00"]
BAD_PASSTHROUGH = ["Full", "FULL", "thin ", " full", "none", "1", "0", "fulll"]

TRY_ALL = """
import os, sys, objarena
name = sys.argv[1]
for value in sys.argv[2:]:
    os.environ[name] = value
    try:
        with objarena.scope():
            pass
    except ValueError as e:
        assert name in str(e) and repr(value) in str(e), (value, str(e))
        print("REFUSED", repr(value))
    else:
        print("ACCEPTED", repr(value))
"""


@pytest.mark.parametrize("name, values", [("OBJARENA_RESERVE_BYTES", BAD_RESERVE),
                                          ("OBJARENA_WARM_BYTES", BAD_WARM),
                                          ("OBJARENA_PASSTHROUGH", BAD_PASSTHROUGH),
                                          ("OBJARENA_POISON", BAD_POISON)])
def test_every_bad_value_is_a_value_error(child, name, values):
    # Set in the child before its first scope: a refused value is read again
    # at the next entry, so one child tries them all. (Before: " -1" and
    # "\t-2" reserved 64 TiB, WARM_BYTES=-1 meant unlimited, 0x... parsed as
    # hex, any POISON but "0" meant on, any PASSTHROUGH but "full" thin.)
    result = child(TRY_ALL, args=[name, *values], poison=False).check()
    refused = [line for line in result.stdout.splitlines() if line.startswith("REFUSED")]
    assert len(refused) == len(values), result.stdout


@pytest.mark.parametrize("env", [{"OBJARENA_RESERVE_BYTES": " -1"}, {"OBJARENA_RESERVE_BYTES": "\t-2"},
                                 {"OBJARENA_WARM_BYTES": "-1"}, {"OBJARENA_POISON": "yes"},
                                 {"OBJARENA_PASSTHROUGH": "off"},
                                 {"OBJARENA_RESERVE_BYTES": "1G", "OBJARENA_WARM_BYTES": "2G"}])
def test_a_bad_value_from_the_start_refuses_every_scope(child, env):
    # The cases, set before the interpreter starts: the import works,
    # every scope is refused (never a default), nothing is reserved.
    result = child("""
import objarena
for attempt in range(3):
    try:
        with objarena.scope():
            pass
    except ValueError as e:
        print("REFUSED", e)
    else:
        print("ACCEPTED")
print("RESERVED", objarena.info()["reserve_bytes"])
""", env=env, poison=False).check()
    assert result.stdout.count("REFUSED") == 3, result.stdout
    assert "RESERVED 0" in result.stdout, result.stdout


def test_documented_values_are_accepted(child):
    result = child("""
import os, subprocess, sys
cases = [
    ({"OBJARENA_RESERVE_BYTES": "1G"}, 2**30),
    ({"OBJARENA_RESERVE_BYTES": "2GiB"}, 2 * 2**30),
    ({"OBJARENA_RESERVE_BYTES": str(3 * 2**30)}, 3 * 2**30),
    ({"OBJARENA_RESERVE_BYTES": "4gb", "OBJARENA_WARM_BYTES": "4G"}, 4 * 2**30),
    ({"OBJARENA_WARM_BYTES": "0", "OBJARENA_POISON": "0", "OBJARENA_PASSTHROUGH": "thin"}, None),
    ({"OBJARENA_WARM_BYTES": "8M", "OBJARENA_POISON": "1", "OBJARENA_PASSTHROUGH": "full"}, None),
    ({"OBJARENA_WARM_BYTES": "", "OBJARENA_POISON": "", "OBJARENA_PASSTHROUGH": ""}, None),
]
code = "import objarena\\nwith objarena.scope() as s: x = [str(i) for i in range(1000)]\\nprint(objarena.info()['reserve_bytes'], s.poison if hasattr(s, 'poison') else '')"
for env, reserve in cases:
    full = {k: v for k, v in os.environ.items() if not k.startswith("OBJARENA_")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True)
    assert out.returncode == 0, (env, out.stderr)
    got = int(out.stdout.split()[0])
    assert reserve is None or got == reserve, (env, got)
    print("OK", env)
""", poison=False).check()
    assert result.stdout.count("OK") == 7, result.stdout + result.stderr


def test_poison_one_poisons_and_zero_does_not(child):
    code = """
import objarena
with objarena.scope():
    x = [str(i) for i in range(10000)]
    del x
print("QUARANTINED", objarena.info()["quarantined_bytes"])
"""
    on = child(code, env={"OBJARENA_POISON": "1"}, poison=False).check()
    off = child(code, env={"OBJARENA_POISON": "0"}, poison=False).check()
    assert "QUARANTINED 0" not in on.stdout, on.stdout + on.stderr
    assert "QUARANTINED 0" in off.stdout, off.stdout + off.stderr
