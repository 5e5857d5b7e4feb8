#include "guard.h"

#include <exception>
#include <string>

#include "folder.h"

namespace tomobile {
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

int guarded(const std::function<int()>& body, std::ostream& err) {
  try {
    return body();
  } catch (const UserError& e) {
    err << "tomobile-native: error: " << first_line(e.what()) << std::endl;
    return 2;
  } catch (const std::exception& e) {
    err << "tomobile-native: internal error (a bug, please report it): " << first_line(e.what()) << std::endl;
    return 1;
  } catch (...) {
    err << "tomobile-native: internal error (a bug, please report it): an exception of unknown type" << std::endl;
    return 1;
  }
}

}  // namespace tomobile
