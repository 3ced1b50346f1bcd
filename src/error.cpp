// Names for status codes: the strings C callers get from tds_status_name() and Python
// exceptions carry. Kept beside the enum's numbers, which never change.
#include "tdscache/error.hpp"

namespace tds {

std::string_view status_name(status s) noexcept {
  switch (s) {
    case status::ok: return "ok";
    case status::invalid_argument: return "invalid_argument";
    case status::out_of_memory: return "out_of_memory";
    case status::json_malformed: return "json_malformed";
    case status::utf8_invalid: return "utf8_invalid";
    case status::depth_exceeded: return "depth_exceeded";
    case status::number_nan_inf: return "number_nan_inf";
    case status::number_out_of_range: return "number_out_of_range";
    case status::duplicate_key: return "duplicate_key";
    case status::lone_surrogate: return "lone_surrogate";
    case status::item_not_object: return "item_not_object";
    case status::item_no_id: return "item_no_id";
    case status::page_malformed: return "page_malformed";
    case status::pointer_invalid: return "pointer_invalid";
    case status::url_invalid: return "url_invalid";
    case status::connect_failed: return "connect_failed";
    case status::timeout: return "timeout";
    case status::io: return "io";
    case status::protocol: return "protocol";
    case status::tls: return "tls";
    case status::auth: return "auth";
    case status::server_error: return "server_error";
    case status::circuit_open: return "circuit_open";
    case status::cluster: return "cluster";
    case status::not_found: return "not_found";
    case status::internal: return "internal";
  }
  return "unknown";
}

}  // namespace tds
