// The last resort at main: bad input (a UserError) is one line on stderr and exit 2; any other
// exception is a bug in the engine, one line and exit 1. No exception ends in std::terminate.
#pragma once

#include <functional>
#include <ostream>

namespace tomobile {

int guarded(const std::function<int()>& body, std::ostream& err);

}  // namespace tomobile
