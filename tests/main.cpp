#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <nats/nats.h>

#include <cstdio>

namespace {

/// How many test cases the run's filters selected (none outside a run).
unsigned selected = 0;
bool ran = false;

/// CTest runs each test case by its name: a filter that selects nothing (a
/// name CTest cut short, or a renamed case) must fail, never pass empty.
struct selection_listener : doctest::IReporter {
  explicit selection_listener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& stats) override {
    ran = true;
    selected = stats.numTestCasesPassingFilters;
  }
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

} // namespace

REGISTER_LISTENER("selection", 1, selection_listener);

int main(int argc, char** argv) {
  doctest::Context context{argc, argv};
  int result = context.run();
  // nats.c ends a connection's threads after the connection is destroyed; wait
  // for them, so that none still takes an OpenSSL lock while exit runs
  // OpenSSL's cleanup (a TLS test would end in a use of a freed lock).
  nats_CloseAndWait(5000);
  if (result == 0 && ran && selected == 0 && !context.shouldExit()) {
    std::fprintf(stderr, "no test case matches the filters: nothing ran\n");
    result = 1;
  }
  return result;
}
