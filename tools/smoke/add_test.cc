#include "tools/smoke/add.h"

#include <gtest/gtest.h>

TEST(Add, Works) { EXPECT_EQ(smoke_add(2, 40), 42); }
