#include "metrics/metrics.h"

namespace sidecar {

NullMetrics& NoMetrics() {
  static NullMetrics none;
  return none;
}

}  // namespace sidecar
