#include "memgate/base/task_context.h"

namespace memgate {
namespace {

thread_local TaskContextSource* t_source = nullptr;

}  // namespace

TaskContextSource* current_task_context_source() { return t_source; }

void set_current_task_context_source(TaskContextSource* source) { t_source = source; }

TaskContextSourceScope::TaskContextSourceScope(TaskContextSource* source) : previous_(t_source) {
  t_source = source;
}

TaskContextSourceScope::~TaskContextSourceScope() { t_source = previous_; }

void run_in_context(const std::shared_ptr<TaskContext>& context, const std::function<void()>& task) {
  if (!context) {
    TaskContextSourceScope none(nullptr);
    task();
    return;
  }
  FixedTaskContextSource source(context);
  TaskContextSourceScope scope(&source);
  context->run(task);
}

}  // namespace memgate
