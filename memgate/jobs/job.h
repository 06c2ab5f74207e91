// JobSpec: a periodic job a module declares, run by the Scheduler.
#pragma once

#include <chrono>
#include <functional>
#include <stop_token>
#include <string>

#include "memgate/base/status.h"

namespace memgate::jobs {

struct JobSpec {
  std::string name;                          // unique; part of the fleet lock key
  std::chrono::milliseconds period{60'000};  // runs once per period across the fleet
  // Runs on the worker pool; the stop token is requested at shutdown. An error
  // counts as a failure; the job runs again next period.
  std::function<Status(std::stop_token)> run;
};

}  // namespace memgate::jobs
