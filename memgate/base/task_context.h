// TaskContext: what a piece of work carries with it when it hops threads.
//
// A request's handler may post work to the worker pool; whatever follows the
// request (its allocation accounting, today) must follow that work. The thread
// running the request installs a TaskContextSource; WorkerPool::post() asks the
// current source for a context (the source makes it on first demand, so a
// request that posts nothing pays nothing) and runs the task inside it, with the
// same context installed as the source, so work posted from there follows too.
//
// Thread-safety: the current source is thread-local. A TaskContext may run tasks
// on several threads at once and must be thread-safe.
#pragma once

#include <functional>
#include <memory>

namespace memgate {

class TaskContext {
 public:
  virtual ~TaskContext() = default;
  // Runs `task` on the calling thread inside this context.
  virtual void run(const std::function<void()>& task) = 0;
};

class TaskContextSource {
 public:
  virtual ~TaskContextSource() = default;
  // The context for work posted now; may return null (no context).
  virtual std::shared_ptr<TaskContext> capture() = 0;
};

// A source that hands out one given context (or none): what run_in_context
// installs while a context runs a task, and what a test installs to stand for a
// request.
class FixedTaskContextSource final : public TaskContextSource {
 public:
  explicit FixedTaskContextSource(std::shared_ptr<TaskContext> context) : context_(std::move(context)) {}
  std::shared_ptr<TaskContext> capture() override { return context_; }

 private:
  std::shared_ptr<TaskContext> context_;
};

// The calling thread's current source (null when none).
TaskContextSource* current_task_context_source();

// Installs a source for the calling thread for the scope's life.
class TaskContextSourceScope {
 public:
  explicit TaskContextSourceScope(TaskContextSource* source);
  ~TaskContextSourceScope();
  TaskContextSourceScope(const TaskContextSourceScope&) = delete;
  TaskContextSourceScope& operator=(const TaskContextSourceScope&) = delete;

 private:
  TaskContextSource* previous_;
};

// Sets the thread's source without a scope (for hooks split into begin/end calls).
void set_current_task_context_source(TaskContextSource* source);

// Runs `task` inside `context` (or plainly when null), with that context as the
// thread's source meanwhile.
void run_in_context(const std::shared_ptr<TaskContext>& context, const std::function<void()>& task);

}  // namespace memgate
