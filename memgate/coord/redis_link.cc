// The single-connection link: every call goes straight to the Connection.
#include "memgate/coord/redis_link.h"

namespace memgate::coord {
namespace {

class ConnectionLink final : public RedisLink {
 public:
  explicit ConnectionLink(std::unique_ptr<Connection> conn) : conn_(std::move(conn)) {}

  Status wait_connected(std::chrono::milliseconds timeout) override { return conn_->wait_connected(timeout); }
  bool connected() const override { return conn_->connected(); }
  std::string last_error() const override { return conn_->last_error(); }
  void async_command(const std::vector<std::string_view>& args, ReplyCallback cb) override {
    conn_->async_command(args, std::move(cb));
  }
  void async_eval(const Script& script, const std::vector<std::string_view>& keys,
                  const std::vector<std::string_view>& args, ReplyCallback cb) override {
    conn_->async_eval(script, keys, args, std::move(cb));
  }
  Result<Reply> command(const std::vector<std::string_view>& args) override { return conn_->command(args); }
  Result<Reply> eval(const Script& script, const std::vector<std::string_view>& keys,
                     const std::vector<std::string_view>& args) override {
    return conn_->eval(script, keys, args);
  }
  Result<Reply> command_near(std::string_view, const std::vector<std::string_view>& args) override {
    return conn_->command(args);
  }
  Connection* single_connection() override { return conn_.get(); }

 private:
  std::unique_ptr<Connection> conn_;
};

}  // namespace

std::unique_ptr<RedisLink> link_to_connection(std::unique_ptr<Connection> conn) {
  return std::make_unique<ConnectionLink>(std::move(conn));
}

}  // namespace memgate::coord
