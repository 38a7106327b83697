import sys
import sysconfig

import smokeext


def test_add_and_abi():
    assert smokeext.add(2, 40) == 42
    assert smokeext.__file__.endswith(sysconfig.get_config_var("EXT_SUFFIX"))
    print(sys.version, smokeext.__file__)
