#include <Python.h>

#include <gtest/gtest.h>

#include <string>

#include "tools/smoke/embed_helper.h"

TEST(Embed, InitializeEvalFinalize) { EXPECT_EQ(smoke_embed_eval(), 42); }

TEST(Embed, PlainPyInitialize) {
  Py_Initialize();
  ASSERT_TRUE(Py_IsInitialized());
  EXPECT_EQ(PyRun_SimpleString("import sys; assert sys.version_info >= (3, 10)"), 0);
  EXPECT_EQ(Py_FinalizeEx(), 0);
}

TEST(Embed, HeaderVersionMatchesRuntime) {
  // Runtime "3.11.7 (main, ...)" starts with the headers' "3.11".
  const std::string runtime = Py_GetVersion();
  const std::string headers = PY_VERSION;
  EXPECT_EQ(runtime.substr(0, runtime.find('.', 2)), headers.substr(0, headers.find('.', 2)));
}
