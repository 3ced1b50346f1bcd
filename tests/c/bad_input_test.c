/* The bad-input catalogue (tests/bad_inputs.json) through the C API: each malformed or hostile
 * input gives its expected status, message and offset, or its expected output, records or
 * decisions against a redis-server this program starts (posix_spawn, unix socket in a mkdtemp
 * dir, stopped by PID). Holds a small reader for the catalogue's JSON, since C has none.
 * Prints "bad_input_c: N cases, M failed" and exits non-zero on any failure. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tdscache.h"

extern char **environ;

/* --------------------------------------------------------------------------------------------
 * Failures: counted per case, reported with the case name */

static const char *current_case = "";
static int case_failures;
static int total_failures;

#if defined(__GNUC__)
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif

/* One failed expectation of the current case: printed with the case name. */
static void fail(const char *fmt, ...) {
  va_list args;
  ++case_failures;
  fprintf(stderr, "bad_input_test.c: %s: ", current_case);
  va_start(args, fmt);
  vfprintf(stderr, fmt, args);
  va_end(args);
  fprintf(stderr, "\n");
}

/* --------------------------------------------------------------------------------------------
 * A JSON reader for the catalogue: a trusted file, so errors only need to be detected, not
 * explained. Strings are decoded to bytes (they may hold NUL), with their lengths. */

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

typedef struct json {
  enum json_type type;
  double number; /* numbers and booleans */
  char *text;    /* strings: decoded bytes plus a NUL */
  size_t length;
  struct json *items; /* arrays and objects (an object's item i has key keys[i]) */
  char **keys;
  size_t count;
} json;

typedef struct reader {
  const char *p;
  const char *end;
  int failed;
} reader;

static void skip_space(reader *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t')) ++r->p;
}

static void append_utf8(char *out, size_t *n, unsigned long cp) {
  if (cp < 0x80) {
    out[(*n)++] = (char)cp;
  } else if (cp < 0x800) {
    out[(*n)++] = (char)(0xC0 | (cp >> 6));
    out[(*n)++] = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out[(*n)++] = (char)(0xE0 | (cp >> 12));
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[(*n)++] = (char)(0x80 | (cp & 0x3F));
  } else {
    out[(*n)++] = (char)(0xF0 | (cp >> 18));
    out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[(*n)++] = (char)(0x80 | (cp & 0x3F));
  }
}

static unsigned long read_hex4(reader *r) {
  unsigned long v = 0;
  int i;
  for (i = 0; i < 4; ++i) {
    char c = r->p < r->end ? *r->p++ : 'x';
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned long)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned long)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned long)(c - 'A' + 10);
    else r->failed = 1;
  }
  return v;
}

/* r->p is just past the opening quote. Decoded text is never longer than its source. */
static char *read_string(reader *r, size_t *length) {
  char *out = malloc((size_t)(r->end - r->p) + 1);
  size_t n = 0;
  while (out != NULL && r->p < r->end && *r->p != '"') {
    char c = *r->p++;
    unsigned long cp;
    if (c != '\\') {
      out[n++] = c;
      continue;
    }
    c = r->p < r->end ? *r->p++ : '?';
    switch (c) {
      case 'b': out[n++] = '\b'; break;
      case 'f': out[n++] = '\f'; break;
      case 'n': out[n++] = '\n'; break;
      case 'r': out[n++] = '\r'; break;
      case 't': out[n++] = '\t'; break;
      case 'u':
        cp = read_hex4(r);
        if (cp >= 0xD800 && cp <= 0xDBFF && r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u') {
          const char *save = r->p;
          unsigned long low;
          r->p += 2;
          low = read_hex4(r);
          if (low >= 0xDC00 && low <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          else r->p = save;
        }
        append_utf8(out, &n, cp);
        break;
      default: out[n++] = c; break; /* " \ / */
    }
  }
  if (out == NULL || r->p >= r->end) {
    free(out);
    r->failed = 1;
    return NULL;
  }
  ++r->p;
  out[n] = '\0';
  *length = n;
  return out;
}

static void parse_value(reader *r, json *v);

static void parse_container(reader *r, json *v, char close) {
  size_t capacity = 0;
  ++r->p;
  skip_space(r);
  if (r->p < r->end && *r->p == close) {
    ++r->p;
    return;
  }
  while (!r->failed) {
    if (v->count == capacity) {
      capacity = capacity ? capacity * 2 : 8;
      v->items = realloc(v->items, capacity * sizeof *v->items);
      if (close == '}') v->keys = realloc(v->keys, capacity * sizeof *v->keys);
      if (v->items == NULL || (close == '}' && v->keys == NULL)) {
        r->failed = 1;
        return;
      }
    }
    memset(&v->items[v->count], 0, sizeof *v->items);
    skip_space(r);
    if (close == '}') {
      size_t key_length;
      if (r->p >= r->end || *r->p != '"') {
        r->failed = 1;
        return;
      }
      ++r->p;
      v->keys[v->count] = read_string(r, &key_length);
      skip_space(r);
      if (r->failed || r->p >= r->end || *r->p++ != ':') {
        r->failed = 1;
        return;
      }
    }
    parse_value(r, &v->items[v->count++]);
    skip_space(r);
    if (r->p < r->end && *r->p == ',') {
      ++r->p;
    } else if (r->p < r->end && *r->p == close) {
      ++r->p;
      return;
    } else {
      r->failed = 1;
    }
  }
}

static void parse_value(reader *r, json *v) {
  skip_space(r);
  if (r->p >= r->end) {
    r->failed = 1;
    return;
  }
  if (*r->p == '{') {
    v->type = JSON_OBJECT;
    parse_container(r, v, '}');
  } else if (*r->p == '[') {
    v->type = JSON_ARRAY;
    parse_container(r, v, ']');
  } else if (*r->p == '"') {
    ++r->p;
    v->type = JSON_STRING;
    v->text = read_string(r, &v->length);
  } else if (strncmp(r->p, "true", 4) == 0 || strncmp(r->p, "false", 5) == 0) {
    v->type = JSON_BOOL;
    v->number = *r->p == 't';
    r->p += *r->p == 't' ? 4 : 5;
  } else if (strncmp(r->p, "null", 4) == 0) {
    v->type = JSON_NULL;
    r->p += 4;
  } else {
    char *after;
    v->type = JSON_NUMBER;
    v->number = strtod(r->p, &after);
    if (after == r->p) r->failed = 1;
    r->p = after;
  }
}

static void json_free(json *v) {
  size_t i;
  for (i = 0; i < v->count; ++i) {
    json_free(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->text);
}

static const json *get(const json *object, const char *key) {
  size_t i;
  if (object == NULL || object->type != JSON_OBJECT) return NULL;
  for (i = 0; i < object->count; ++i)
    if (strcmp(object->keys[i], key) == 0) return &object->items[i];
  return NULL;
}

static const char *text_of(const json *v) { return v && v->type == JSON_STRING ? v->text : ""; }

static long long number_of(const json *v, long long fallback) {
  return v && (v->type == JSON_NUMBER || v->type == JSON_BOOL) ? (long long)v->number : fallback;
}

/* --------------------------------------------------------------------------------------------
 * Bytes specs: {"text"}, {"hex"} or {"parts"} (see the catalogue's "format") */

typedef struct buffer {
  char *data;
  size_t length;
  size_t capacity;
} buffer;

static void buffer_reserve(buffer *b, size_t more) {
  size_t want = b->capacity ? b->capacity : 64;
  if (b->length + more + 1 <= b->capacity) return;
  while (want < b->length + more + 1) want *= 2;
  b->data = realloc(b->data, want);
  if (b->data == NULL) {
    fprintf(stderr, "bad_input_test.c: out of memory\n");
    exit(2);
  }
  b->capacity = want;
}

static void buffer_append(buffer *b, const char *bytes, size_t n) {
  buffer_reserve(b, n);
  if (n) memcpy(b->data + b->length, bytes, n);
  b->length += n;
  b->data[b->length] = '\0';
}

/* Appends a copy of the buffer's own bytes [from, from + n): reserved first, so the source
 * does not move under the copy. */
static void buffer_append_own(buffer *b, size_t from, size_t n) {
  buffer_reserve(b, n);
  memcpy(b->data + b->length, b->data + from, n);
  b->length += n;
  b->data[b->length] = '\0';
}

static void append_hex(buffer *b, const char *hex) {
  for (; hex[0] && hex[1]; hex += 2) {
    char pair[3] = {hex[0], hex[1], 0};
    char byte = (char)strtol(pair, NULL, 16);
    buffer_append(b, &byte, 1);
  }
}

/* Appends the bytes the spec describes; the result stays NUL-terminated. */
static void append_spec(buffer *b, const json *spec) {
  const json *parts = get(spec, "parts");
  size_t i;
  if (get(spec, "text")) {
    buffer_append(b, get(spec, "text")->text, get(spec, "text")->length);
    return;
  }
  if (get(spec, "hex")) {
    append_hex(b, text_of(get(spec, "hex")));
    return;
  }
  for (i = 0; parts && i < parts->count; ++i) {
    const json *part = &parts->items[i];
    const json *seq = get(part, "sequence");
    long long k, times = number_of(get(part, "repeat"), 1);
    if (seq) {
      long long start = number_of(get(seq, "start"), 0), step = number_of(get(seq, "step"), 1);
      long long count = number_of(get(seq, "count"), 0);
      const json *sep = get(seq, "separator");
      for (k = 0; k < count; ++k) {
        char number[128];
        int n = snprintf(number, sizeof number, text_of(get(seq, "format")), (int)(start + k * step));
        if (k > 0) buffer_append(b, sep->text, sep->length);
        buffer_append(b, number, (size_t)n);
      }
      continue;
    }
    {
      const size_t before = b->length;
      size_t piece;
      long long have = 1;
      append_spec(b, part);
      piece = b->length - before;
      /* Doubling what is there: 100 MB of one byte in 27 copies. */
      for (; have * 2 <= times; have *= 2) buffer_append_own(b, before, piece * (size_t)have);
      for (; have < times; ++have) buffer_append_own(b, before, piece);
    }
  }
}

static buffer bytes_of(const json *spec) {
  buffer b = {NULL, 0, 0};
  buffer_append(&b, "", 0);
  append_spec(&b, spec);
  return b;
}

static int bytes_equal(const buffer *b, const char *bytes, size_t n) {
  return b->length == n && (n == 0 || memcmp(b->data, bytes, n) == 0);
}

/* --------------------------------------------------------------------------------------------
 * Expectations */

static void check_error(int rc, const char *message, size_t offset, const json *want, const char *what) {
  const char *status = text_of(get(want, "status"));
  const json *fragment = get(want, "message");
  const json *at = get(want, "offset");
  const json *max = get(want, "message_max");
  const json *secret = get(want, "message_excludes");
  if (strcmp(tds_status_name(rc), status) != 0) fail("%s: status %s (%s), want %s", what, tds_status_name(rc), message ? message : "", status);
  if (message == NULL || message[0] == '\0') fail("%s: empty message", what);
  if (message && fragment && strstr(message, fragment->text) == NULL)
    fail("%s: message \"%.300s\" lacks \"%s\"", what, message, fragment->text);
  if (at && offset != (size_t)number_of(at, -1)) fail("%s: offset %lld, want %lld", what, (long long)offset, number_of(at, -1));
  if (message && max && strlen(message) > (size_t)number_of(max, 0)) fail("%s: message of %lu bytes, at most %lld", what, (unsigned long)strlen(message), number_of(max, 0));
  if (message && secret && strstr(message, secret->text) != NULL) fail("%s: message repeats a secret: %s", what, message);
}

static int expects_ok(const json *want) { return strcmp(text_of(get(want, "status")), "ok") == 0; }

/* Options -> a hasher; returns the tds_hasher_new status. */
static int hasher_for(tds_hasher **out, const json *c) {
  const json *opts = get(c, "options");
  const json *pointers = get(opts, "exclude_pointers");
  const char *list[128];
  tds_hash_options o;
  size_t i;
  tds_hash_options_init(&o, TDS_HASH_OPTIONS_VERSION);
  if (strcmp(text_of(get(opts, "scheme")), "jcs") == 0) o.scheme = TDS_SCHEME_JCS;
  o.strict = (int)number_of(get(opts, "strict"), 0);
  o.max_depth = (size_t)number_of(get(opts, "max_depth"), 512);
  for (i = 0; pointers && i < pointers->count && i < 128; ++i) list[i] = pointers->items[i].text;
  o.exclude_pointers = list;
  o.exclude_pointers_count = pointers ? pointers->count : 0;
  return tds_hasher_new(out, &o);
}

/* --------------------------------------------------------------------------------------------
 * canonicalize, hash_page, parse_url */

static void run_canonicalize(const json *c) {
  const json *want = get(c, "expect");
  tds_hasher *h = NULL;
  buffer input, expected;
  char *out = NULL;
  size_t out_len = 0;
  int rc = hasher_for(&h, c);
  if (rc != TDS_OK) {
    check_error(rc, tds_last_error(), tds_last_error_offset(), want, "tds_hasher_new");
    return;
  }
  input = bytes_of(get(c, "input"));
  rc = tds_canonicalize(&out, &out_len, h, input.data, input.length);
  if (!expects_ok(want)) {
    if (rc == TDS_OK) fail("tds_canonicalize accepted it");
    else check_error(rc, tds_last_error(), tds_last_error_offset(), want, "tds_canonicalize");
    if (out != NULL) fail("tds_canonicalize: output not NULL on failure");
  } else if (rc != TDS_OK) {
    fail("tds_canonicalize failed: %s", tds_last_error());
  } else {
    expected = bytes_of(get(want, "output"));
    if (!bytes_equal(&expected, out, out_len))
      fail("tds_canonicalize: output of %lu bytes differs from the expected %lu", (unsigned long)out_len, (unsigned long)expected.length);
    if (out[out_len] != '\0') fail("tds_canonicalize: output not NUL-terminated");
    free(expected.data);
  }
  tds_free(out);
  free(input.data);
  tds_hasher_free(h);
}

static void run_hash_page(const json *c) {
  const json *want = get(c, "expect");
  const json *page_spec = get(c, "page");
  const json *records = get(want, "records");
  tds_page_options popts;
  tds_hasher *h = NULL;
  tds_page *page = NULL;
  buffer body;
  size_t i;
  int rc = hasher_for(&h, c);
  if (rc != TDS_OK) {
    fail("tds_hasher_new failed: %s", tds_last_error());
    return;
  }
  tds_page_options_init(&popts, TDS_PAGE_OPTIONS_VERSION);
  if (get(page_spec, "items_key")) popts.items_key = text_of(get(page_spec, "items_key"));
  if (get(page_spec, "id_field")) popts.id_field = text_of(get(page_spec, "id_field"));
  if (get(page_spec, "modified_field")) popts.modified_field = text_of(get(page_spec, "modified_field"));
  body = bytes_of(get(c, "input"));
  rc = tds_hash_page(&page, h, body.data, body.length, &popts);
  if (!expects_ok(want)) {
    if (rc == TDS_OK) fail("tds_hash_page accepted it, with %lu records", (unsigned long)tds_page_count(page));
    else check_error(rc, tds_last_error(), tds_last_error_offset(), want, "tds_hash_page");
  } else if (rc != TDS_OK) {
    fail("tds_hash_page failed: %s", tds_last_error());
  } else if (tds_page_count(page) != records->count) {
    fail("tds_hash_page: %lu records, want %lu", (unsigned long)tds_page_count(page), (unsigned long)records->count);
  } else {
    for (i = 0; i < records->count; ++i) {
      const json *w = &records->items[i];
      int status = tds_page_record_status(page, i);
      if (!expects_ok(w)) {
        check_error(status, tds_page_record_message(page, i), (size_t)-1, w, "record");
      } else if (status != TDS_OK) {
        fail("record %lu not hashed: %s", (unsigned long)i, tds_page_record_message(page, i));
      } else {
        size_t id_len = 0;
        const char *id = tds_page_record_id(page, i, &id_len);
        buffer expected = bytes_of(get(w, "id"));
        if (!bytes_equal(&expected, id, id_len)) fail("record %lu: id differs", (unsigned long)i);
        if (tds_page_record_digest(page, i) == NULL) fail("record %lu: no digest", (unsigned long)i);
        free(expected.data);
      }
    }
  }
  tds_page_free(page);
  free(body.data);
  tds_hasher_free(h);
}

static void run_parse_url(const json *c) {
  tds_client *client = NULL;
  buffer url = bytes_of(get(c, "input"));
  int rc = tds_client_open_url(&client, url.data);
  if (rc == TDS_OK) fail("tds_client_open_url accepted it");
  else check_error(rc, tds_last_error(), tds_last_error_offset(), get(c, "expect"), "tds_client_open_url");
  if (client != NULL) fail("tds_client_open_url: client not NULL on failure");
  tds_client_free(client);
  free(url.data);
}

/* --------------------------------------------------------------------------------------------
 * A redis-server of our own, and raw RESP to it for what the C API does not do (FLUSHALL, and
 * SET of arbitrary bytes at a state key) */

static char server_dir[256];
static char server_socket[320];
static pid_t server_pid = -1;

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sends one command (binary-safe arguments) and reads a one-line reply into line.
 * Returns 0 when the reply starts with '+'. */
static int raw_command(int argc, const char *const *argv, const size_t *lens, char *line, size_t line_size) {
  struct sockaddr_un addr;
  buffer cmd = {NULL, 0, 0};
  char head[64];
  size_t got = 0, sent = 0;
  int i, rc = -1;
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (strlen(server_socket) >= sizeof addr.sun_path) {
    close(fd);
    return -1;
  }
  memcpy(addr.sun_path, server_socket, strlen(server_socket) + 1);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  snprintf(head, sizeof head, "*%d\r\n", argc);
  buffer_append(&cmd, head, strlen(head));
  for (i = 0; i < argc; ++i) {
    snprintf(head, sizeof head, "$%lu\r\n", (unsigned long)lens[i]);
    buffer_append(&cmd, head, strlen(head));
    buffer_append(&cmd, argv[i], lens[i]);
    buffer_append(&cmd, "\r\n", 2);
  }
  while (sent < cmd.length) {
    ssize_t n = write(fd, cmd.data + sent, cmd.length - sent);
    if (n <= 0) break;
    sent += (size_t)n;
  }
  while (sent == cmd.length && got + 1 < line_size) {
    ssize_t n = read(fd, line + got, 1);
    if (n <= 0) break;
    got += (size_t)n;
    if (got >= 2 && line[got - 2] == '\r' && line[got - 1] == '\n') {
      rc = line[0] == '+' ? 0 : -1;
      break;
    }
  }
  line[got] = '\0';
  free(cmd.data);
  close(fd);
  return rc;
}

static int server_ping(void) {
  const char *argv[] = {"PING"};
  const size_t lens[] = {4};
  char line[64];
  return raw_command(1, argv, lens, line, sizeof line) == 0 && strncmp(line, "+PONG", 5) == 0;
}

static int start_server(void) {
  const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  char *args[16];
  posix_spawn_file_actions_t quiet;
  double deadline;
  int n = 0, spawned;
  snprintf(server_dir, sizeof server_dir, "%s/tds-bad-input-XXXXXX", tmp);
  if (mkdtemp(server_dir) == NULL) return 0;
  snprintf(server_socket, sizeof server_socket, "%s/redis.sock", server_dir);
  args[n++] = "redis-server";
  args[n++] = "--port";
  args[n++] = "0";
  args[n++] = "--unixsocket";
  args[n++] = server_socket;
  args[n++] = "--save";
  args[n++] = "";
  args[n++] = "--appendonly";
  args[n++] = "no";
  args[n++] = "--dir";
  args[n++] = server_dir;
  args[n++] = "--loglevel";
  args[n++] = "warning";
  args[n] = NULL;
  /* Its start-up banner and warnings go nowhere: a failed start shows as no PONG. */
  /* Nothing of ours is inherited: ctest waits for EOF on the output pipe it gave this test. */
  if (posix_spawn_file_actions_init(&quiet) != 0 ||
      posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0) != 0 ||
      posix_spawn_file_actions_adddup2(&quiet, 1, 2) != 0) {
    return 0;
  }
  spawned = posix_spawnp(&server_pid, "redis-server", &quiet, NULL, args, environ);
  posix_spawn_file_actions_destroy(&quiet);
  if (spawned != 0) {
    server_pid = -1;
    return 0;
  }
  /* Ready when it answers PING; between attempts wait 10 ms in poll(), up to 10 s. */
  deadline = seconds_now() + 10.0;
  while (seconds_now() < deadline) {
    int status;
    if (waitpid(server_pid, &status, WNOHANG) == server_pid) {
      server_pid = -1;
      return 0;
    }
    if (server_ping()) return 1;
    poll(NULL, 0, 10);
  }
  return 0;
}

/* A crash (a sanitizer's abort included) must not leave the server running: it would outlive
 * the test and keep its socket directory. kill() is async-signal-safe. */
static void stop_server_and_crash(int sig) {
  if (server_pid > 0) kill(server_pid, SIGKILL);
  signal(sig, SIG_DFL);
  raise(sig);
}

static void stop_server(void) {
  if (server_pid > 0) {
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    server_pid = -1;
  }
  unlink(server_socket);
  rmdir(server_dir);
}

/* --------------------------------------------------------------------------------------------
 * redis steps */

static tds_digest catalogue_digest;

static tds_entity entity_of(const buffer *type, const buffer *id) {
  tds_entity e = {.entity_type = type->data, .entity_type_len = type->length, .entity_id = id->data,
                  .entity_id_len = id->length, .scheme = TDS_SCHEME_LEGACY};
  e.digest = catalogue_digest;
  return e;
}

static void step_plant(const json *s) {
  buffer type = bytes_of(get(s, "type")), id = bytes_of(get(s, "id")), value = bytes_of(get(s, "value"));
  buffer key = {NULL, 0, 0};
  const char *argv[3];
  size_t lens[3];
  char line[128];
  buffer_append(&key, "tds:entity:state:", 17);
  buffer_append(&key, type.data, type.length);
  buffer_append(&key, ":", 1);
  buffer_append(&key, id.data, id.length);
  argv[0] = "SET", lens[0] = 3;
  argv[1] = key.data, lens[1] = key.length;
  argv[2] = value.data, lens[2] = value.length;
  if (raw_command(3, argv, lens, line, sizeof line) != 0) fail("plant: SET failed: %s", line);
  free(key.data), free(type.data), free(id.data), free(value.data);
}

static void step_check(tds_client *c, const json *s) {
  buffer type = bytes_of(get(s, "type")), id = bytes_of(get(s, "id"));
  tds_entity e = entity_of(&type, &id);
  tds_check_result *r = NULL;
  if (tds_client_check(&r, c, &e, 1) != TDS_OK) {
    fail("check: tds_client_check failed: %s", tds_last_error());
  } else if (strcmp(tds_reason_name(tds_check_result_reason(r, 0)), text_of(get(s, "reason"))) != 0) {
    fail("check: reason %s, want %s (%s)", tds_reason_name(tds_check_result_reason(r, 0)), text_of(get(s, "reason")),
         tds_check_result_message(r));
  }
  tds_check_result_free(r);
  free(type.data), free(id.data);
}

static void step_commit(tds_client *c, const json *s) {
  buffer type = bytes_of(get(s, "type")), id = bytes_of(get(s, "id"));
  tds_entity e = entity_of(&type, &id);
  tds_check_result *r = NULL;
  tds_commit_result *done = NULL;
  tds_state *state = NULL;
  if (tds_client_check(&r, c, &e, 1) != TDS_OK || tds_check_result_should_sync(r, 0) != 1) {
    fail("commit: the check before it did not ask for a sync");
  } else {
    tds_commit_item item = {.entity_type = type.data, .entity_type_len = type.length, .entity_id = id.data,
                            .entity_id_len = id.length, .scheme = TDS_SCHEME_LEGACY, .checked = r};
    size_t len = 0;
    const char *stored;
    item.digest = catalogue_digest;
    if (tds_client_commit(&done, c, &item, 1) != TDS_OK || tds_commit_result_outcome(done, 0) != TDS_COMMIT_WRITTEN)
      fail("commit: not written: %s", tds_commit_result_message(done));
    if (tds_client_get_state(&state, c, type.data, type.length, id.data, id.length) != TDS_OK) {
      fail("commit: no state afterwards: %s", tds_last_error());
    } else {
      stored = tds_state_entity_id(state, &len);
      if (!bytes_equal(&id, stored, len)) fail("commit: the stored entity_id differs");
    }
  }
  tds_state_free(state);
  tds_commit_result_free(done);
  tds_check_result_free(r);
  free(type.data), free(id.data);
}

static void step_invalidate(tds_client *c, const json *s) {
  buffer type = bytes_of(get(s, "type"));
  uint64_t removed = 99;
  int rc;
  if (get(s, "id")) {
    buffer id = bytes_of(get(s, "id"));
    rc = tds_client_invalidate(&removed, c, type.data, type.length, id.data, id.length);
    free(id.data);
  } else {
    rc = tds_client_invalidate_type(&removed, c, type.data, type.length);
  }
  if (rc != TDS_OK) fail("invalidate failed: %s", tds_last_error());
  else if ((long long)removed != number_of(get(s, "removed"), -1))
    fail("invalidate: removed %llu, want %lld", (unsigned long long)removed, number_of(get(s, "removed"), -1));
  free(type.data);
}

static void run_redis(const json *c) {
  const json *steps = get(c, "steps");
  const char *argv[] = {"FLUSHALL"};
  const size_t lens[] = {8};
  char line[64], url[400];
  tds_client *client = NULL;
  size_t i;
  if (raw_command(1, argv, lens, line, sizeof line) != 0) {
    fail("FLUSHALL failed: %s", line);
    return;
  }
  snprintf(url, sizeof url, "unix://%s", server_socket);
  if (tds_client_open_url(&client, url) != TDS_OK) {
    fail("cannot open a client: %s", tds_last_error());
    return;
  }
  for (i = 0; i < steps->count; ++i) {
    const json *step = &steps->items[i];
    const char *kind = step->keys[0];
    const json *s = &step->items[0];
    if (strcmp(kind, "plant") == 0) step_plant(s);
    else if (strcmp(kind, "check") == 0) step_check(client, s);
    else if (strcmp(kind, "commit") == 0) step_commit(client, s);
    else if (strcmp(kind, "invalidate") == 0) step_invalidate(client, s);
    else fail("unknown step %s", kind);
  }
  tds_client_free(client);
}

/* --------------------------------------------------------------------------------------------
 * Canonical and page cases run on a thread with a 64 MB stack: the walker refuses nesting its
 * thread's stack cannot hold, and sanitizer frames are several KB per level, so the 4096-deep
 * case needs more than the 8 MB main thread to give the answer a production build gives there. */

typedef struct stack_job {
  void (*run)(const json *);
  const json *c;
} stack_job;

static void *run_job(void *arg) {
  const stack_job *job = (const stack_job *)arg;
  job->run(job->c);
  return NULL;
}

static void run_on_large_stack(void (*run)(const json *), const json *c) {
  pthread_attr_t attr;
  pthread_t thread;
  stack_job job;
  job.run = run;
  job.c = c;
  if (pthread_attr_init(&attr) != 0 || pthread_attr_setstacksize(&attr, (size_t)64 << 20) != 0 ||
      pthread_create(&thread, &attr, run_job, &job) != 0) {
    fail("cannot start a thread with a 64 MB stack");
    return;
  }
  pthread_join(thread, NULL);
  pthread_attr_destroy(&attr);
}

/* -------------------------------------------------------------------------------------------- */

static char *read_whole_file(const char *path, size_t *length) {
  FILE *f = fopen(path, "rb");
  char *data = NULL;
  long size;
  if (f == NULL) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    data = malloc((size_t)size + 1);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
      free(data);
      data = NULL;
    }
    if (data) data[size] = '\0', *length = (size_t)size;
  }
  fclose(f);
  return data;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : TDS_BAD_INPUTS;
  size_t length = 0, i, ran = 0, skipped = 0;
  char *text = read_whole_file(path, &length);
  json root;
  reader r;
  const json *cases;
  if (text == NULL) {
    fprintf(stderr, "bad_input_c: cannot read %s\n", path);
    return 2;
  }
  memset(&root, 0, sizeof root);
  r.p = text, r.end = text + length, r.failed = 0;
  parse_value(&r, &root);
  cases = get(&root, "cases");
  if (r.failed || cases == NULL || cases->type != JSON_ARRAY ||
      tds_digest_from_hex(&catalogue_digest, text_of(get(&root, "digest")), 64) != TDS_OK) {
    fprintf(stderr, "bad_input_c: %s is not a catalogue\n", path);
    return 2;
  }
  signal(SIGABRT, stop_server_and_crash);
  signal(SIGSEGV, stop_server_and_crash);
  signal(SIGBUS, stop_server_and_crash);
  if (!start_server()) {
    fprintf(stderr, "bad_input_c: redis-server did not start\n");
    stop_server();
    return 2;
  }
  for (i = 0; i < cases->count; ++i) {
    const json *c = &cases->items[i];
    const char *op = text_of(get(c, "op"));
    current_case = text_of(get(c, "name"));
    case_failures = 0;
    if (get(get(c, "skip"), "c")) {
      ++skipped;
      printf("bad_input_c: skipped %s: %s\n", current_case, text_of(get(get(c, "skip"), "c")));
      continue;
    }
    if (strcmp(op, "canonicalize") == 0) run_on_large_stack(run_canonicalize, c);
    else if (strcmp(op, "hash_page") == 0) run_on_large_stack(run_hash_page, c);
    else if (strcmp(op, "parse_url") == 0) run_parse_url(c);
    else if (strcmp(op, "redis") == 0) run_redis(c);
    else fail("unknown op %s", op);
    ++ran;
    if (case_failures) ++total_failures;
  }
  stop_server();
  json_free(&root);
  free(text);
  printf("bad_input_c: %lu cases, %lu skipped, %d failed\n", (unsigned long)ran, (unsigned long)skipped, total_failures);
  return total_failures == 0 && ran >= 40 ? 0 : 1;
}
