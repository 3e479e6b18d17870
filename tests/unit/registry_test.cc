#include "metrics/registry.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

using namespace sidecar;

TEST_SUITE("metrics registry") {
  TEST_CASE("label values escape backslash, double quote and newline, and nothing else") {
    CHECK(EscapeLabelValue("plain") == "plain");
    CHECK(EscapeLabelValue("a\\b") == "a\\\\b");
    CHECK(EscapeLabelValue("say \"hi\"") == "say \\\"hi\\\"");
    CHECK(EscapeLabelValue("one\ntwo") == "one\\ntwo");
    CHECK(EscapeLabelValue("tab\tand {braces}, commas=") == "tab\tand {braces}, commas=");
    CHECK(EscapeLabelValue("\\\"\n") == "\\\\\\\"\\n");
    CHECK(EscapeLabelValue("caf\xc3\xa9") == "caf\xc3\xa9");
  }

  TEST_CASE("help text escapes backslash and newline but keeps double quotes") {
    CHECK(EscapeHelp("a \"quoted\" word") == "a \"quoted\" word");
    CHECK(EscapeHelp("C:\\path\nnext") == "C:\\\\path\\nnext");
  }

  TEST_CASE("sample values are the shortest text that reads back, and the special words") {
    CHECK(FormatSampleValue(0) == "0");
    CHECK(FormatSampleValue(12) == "12");
    CHECK(FormatSampleValue(0.005) == "0.005");
    CHECK(FormatSampleValue(2.5) == "2.5");
    CHECK(FormatSampleValue(4096000) == "4096000");
    CHECK(FormatSampleValue(-1.5) == "-1.5");
    CHECK(FormatSampleValue(std::numeric_limits<double>::infinity()) == "+Inf");
    CHECK(FormatSampleValue(-std::numeric_limits<double>::infinity()) == "-Inf");
    CHECK(FormatSampleValue(std::nan("")) == "NaN");
    CHECK(std::stod(FormatSampleValue(0.1 + 0.2)) == 0.1 + 0.2);
  }

  TEST_CASE("a counter renders HELP, TYPE and one sample per series, sorted by label values") {
    Registry registry;
    CounterFamily& counter = registry.Counter("demo_total", "Things done.", {"kind"});
    counter.Add({"b"}, 2);
    counter.Add({"a"});
    counter.Add({"b"});

    CHECK(registry.Render() ==
          "# HELP demo_total Things done.\n"
          "# TYPE demo_total counter\n"
          "demo_total{kind=\"a\"} 1\n"
          "demo_total{kind=\"b\"} 3\n");
    CHECK(counter.Value({"b"}) == 3);
    CHECK(counter.Value({"never"}) == 0);
  }

  TEST_CASE("declared series show 0 before their first event") {
    Registry registry;
    CounterFamily& counter = registry.Counter("demo_total", "Things.", {"kind"});
    counter.Declare({"x"});
    CHECK(registry.Render().find("demo_total{kind=\"x\"} 0\n") != std::string::npos);

    counter.Add({"x"});
    counter.Declare({"x"});  // declaring again never resets
    CHECK(counter.Value({"x"}) == 1);
  }

  TEST_CASE("label values are escaped in the samples and label names keep their order") {
    Registry registry;
    CounterFamily& counter = registry.Counter("demo_total", "Things.", {"zeta", "alpha"});
    counter.Add({"quote\"back\\slash", "new\nline"});

    CHECK(registry.Render().find(
              "demo_total{zeta=\"quote\\\"back\\\\slash\",alpha=\"new\\nline\"} 1\n") !=
          std::string::npos);
  }

  TEST_CASE("a family without labels writes its sample without braces") {
    Registry registry;
    registry.Gauge("demo_bytes", "Size.").Set({}, 1536);
    CHECK(registry.Render() ==
          "# HELP demo_bytes Size.\n# TYPE demo_bytes gauge\ndemo_bytes 1536\n");
  }

  TEST_CASE("updates whose label values do not fit the label names are ignored") {
    Registry registry;
    CounterFamily& counter = registry.Counter("demo_total", "Things.", {"kind"});
    counter.Add({});
    counter.Add({"a", "b"});
    GaugeFamily& gauge = registry.Gauge("demo_gauge", "G.");
    gauge.Set({"extra"}, 1);

    std::string text = registry.Render();
    CHECK(std::count(text.begin(), text.end(), '\n') == 4);  // only the HELP and TYPE lines
  }

  TEST_CASE("RaiseTo moves a counter up to a total read elsewhere, never down") {
    Registry registry;
    CounterFamily& counter = registry.Counter("otp_sidecar_test_total", "Test.");

    counter.RaiseTo({}, 7);
    counter.RaiseTo({}, 5);  // an older reading, from a scrape that lost a race
    CHECK(counter.Value({}) == 7);
    counter.RaiseTo({}, 9);
    CHECK(counter.Value({}) == 9);
    counter.RaiseTo({"unexpected"}, 100);
    CHECK(counter.Value({}) == 9);
  }

  TEST_CASE("a gauge keeps the last value set, and Clear leaves it out") {
    Registry registry;
    GaugeFamily& gauge = registry.Gauge("demo_depth", "Depth.");
    gauge.Set({}, 3);
    gauge.Set({}, 1);
    CHECK(gauge.Value({}) == 1);
    CHECK(registry.Render().find("demo_depth 1\n") != std::string::npos);

    gauge.Clear();
    CHECK(std::isnan(gauge.Value({})));
    CHECK(registry.Render() == "# HELP demo_depth Depth.\n# TYPE demo_depth gauge\n");
  }

  TEST_CASE("histogram buckets are cumulative, end with +Inf, and _count equals the +Inf bucket") {
    Registry registry;
    HistogramFamily& histogram =
        registry.Histogram("demo_seconds", "Durations.", {"route"}, {0.1, 0.5, 1});
    for (double value : {0.05, 0.1, 0.3, 0.7, 2.0, 9.0})
      histogram.Observe({"/x"}, value);

    CHECK(registry.Render() ==
          "# HELP demo_seconds Durations.\n"
          "# TYPE demo_seconds histogram\n"
          "demo_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n"
          "demo_seconds_bucket{route=\"/x\",le=\"0.5\"} 3\n"
          "demo_seconds_bucket{route=\"/x\",le=\"1\"} 4\n"
          "demo_seconds_bucket{route=\"/x\",le=\"+Inf\"} 6\n"
          "demo_seconds_sum{route=\"/x\"} 12.15\n"
          "demo_seconds_count{route=\"/x\"} 6\n");
    CHECK(histogram.Count({"/x"}) == 6);
  }

  TEST_CASE("a value equal to a bound falls in that bound's bucket (le is <=)") {
    Registry registry;
    HistogramFamily& histogram = registry.Histogram("demo_seconds", "D.", {}, {1, 2});
    histogram.Observe({}, 1);
    histogram.Observe({}, 2);

    std::string text = registry.Render();
    CHECK(text.find("demo_seconds_bucket{le=\"1\"} 1\n") != std::string::npos);
    CHECK(text.find("demo_seconds_bucket{le=\"2\"} 2\n") != std::string::npos);
    CHECK(text.find("demo_seconds_bucket{le=\"+Inf\"} 2\n") != std::string::npos);
    CHECK(text.find("demo_seconds_sum 3\n") != std::string::npos);
    CHECK(text.find("demo_seconds_count 2\n") != std::string::npos);
  }

  TEST_CASE("a declared histogram shows empty buckets, a zero sum and count") {
    Registry registry;
    HistogramFamily& histogram = registry.Histogram("demo_seconds", "D.", {"p"}, {0.5});
    histogram.Declare({"file"});

    CHECK(registry.Render() ==
          "# HELP demo_seconds D.\n"
          "# TYPE demo_seconds histogram\n"
          "demo_seconds_bucket{p=\"file\",le=\"0.5\"} 0\n"
          "demo_seconds_bucket{p=\"file\",le=\"+Inf\"} 0\n"
          "demo_seconds_sum{p=\"file\"} 0\n"
          "demo_seconds_count{p=\"file\"} 0\n");
  }

  TEST_CASE("families render in the order they were registered") {
    Registry registry;
    registry.Counter("b_total", "B.").Add({});
    registry.Counter("a_total", "A.").Add({});

    std::string text = registry.Render();
    CHECK(text.find("b_total") < text.find("a_total"));
  }

  TEST_CASE("concurrent updates and renders lose no increment") {
    Registry registry;
    CounterFamily& counter = registry.Counter("demo_total", "T.", {"kind"});
    HistogramFamily& histogram = registry.Histogram("demo_seconds", "D.", {"kind"}, {0.5});
    constexpr int kThreads = 4;
    constexpr int kEach = 5000;

    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::string kind = t % 2 == 0 ? "even" : "odd";
        for (int i = 0; i < kEach; ++i) {
          counter.Add({kind});
          histogram.Observe({kind}, 0.25);
        }
      });
    }
    for (int i = 0; i < 50; ++i)
      CHECK(!registry.Render().empty());
    for (std::thread& thread : threads)
      thread.join();

    CHECK(counter.Value({"even"}) == 2 * kEach);
    CHECK(counter.Value({"odd"}) == 2 * kEach);
    CHECK(histogram.Count({"even"}) == 2 * kEach);
    CHECK(registry.Render().find("demo_seconds_sum{kind=\"odd\"} 2500\n") != std::string::npos);
  }
}  // TEST_SUITE
