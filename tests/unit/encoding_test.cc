#include "delivery/encoding.h"

#include <doctest/doctest.h>

#include <string>

#include "delivery/message.h"

using namespace sidecar;

TEST_SUITE("encoding") {
  TEST_CASE("plain ASCII text is GSM-7, one septet a character") {
    MessageEncoding e = MeasureMessage("123456 is your Example verification code.");

    CHECK(e.gsm7);
    CHECK(e.units == 41);
    CHECK(e.segments == 1);
  }

  TEST_CASE("the extension table counts two septets a character") {
    MessageEncoding e = MeasureMessage("{[~]}|^\\€");

    CHECK(e.gsm7);
    CHECK(e.units == 18);
  }

  TEST_CASE("accented letters of the GSM alphabet stay GSM-7") {
    MessageEncoding e = MeasureMessage("Ça coûte 5€? é è à ñ ü Ø Δ");

    // "û" is not in the GSM alphabet: the whole text goes UCS-2.
    CHECK_FALSE(e.gsm7);
    CHECK(MeasureMessage("Ça coute 5€ é è à ñ ü Ø Δ").gsm7);
  }

  TEST_CASE("characters outside GSM-7 make the message UCS-2, counted in UTF-16 units") {
    CHECK_FALSE(MeasureMessage("code `123`").gsm7);

    MessageEncoding cyrillic = MeasureMessage("Ваш код 123456");
    CHECK_FALSE(cyrillic.gsm7);
    CHECK(cyrillic.units == 14);

    // An emoji outside the basic plane takes a surrogate pair.
    MessageEncoding emoji = MeasureMessage("ok \xF0\x9F\x94\x91");
    CHECK(emoji.units == 5);
  }

  TEST_CASE("GSM-7 segments: 160 in one, then 153 per segment") {
    CHECK(MeasureMessage(std::string(160, 'a')).segments == 1);
    CHECK(MeasureMessage(std::string(161, 'a')).segments == 2);
    CHECK(MeasureMessage(std::string(306, 'a')).segments == 2);
    CHECK(MeasureMessage(std::string(307, 'a')).segments == 3);
  }

  TEST_CASE("UCS-2 segments: 70 in one, then 67 per segment") {
    std::string one_char = "Ж";
    std::string seventy, seventy_one;
    for (int i = 0; i < 70; ++i)
      seventy += one_char;
    seventy_one = seventy + one_char;

    CHECK(MeasureMessage(seventy).segments == 1);
    CHECK(MeasureMessage(seventy_one).segments == 2);
  }

  TEST_CASE("invalid UTF-8 is counted, not crashed on") {
    MessageEncoding e = MeasureMessage(std::string("ab\xff\xc3", 4));

    CHECK_FALSE(e.gsm7);
    CHECK(e.units == 4);
  }

  TEST_CASE("ToString names the encoding, the units and the segments") {
    CHECK(MeasureMessage("hi").ToString() == "GSM-7, 2 septets, 1 segment");
    CHECK(MeasureMessage(std::string(200, 'a')).ToString() == "GSM-7, 200 septets, 2 segments");
  }
}

TEST_SUITE("message templates by locale") {
  MessageSettings Settings() {
    MessageSettings settings;
    settings.template_text = "{code} is your {app} code.";
    settings.app_name = "Acme";
    settings.ttl_ms = 300'000;
    settings.templates = {{"fr", "{code} est votre code {app}."},
                          {"pt-br", "{code} é o seu código {app}."},
                          {"pt", "{code} é o teu código {app}."}};
    return settings;
  }

  TEST_CASE("an exact tag wins, case and separator do not matter") {
    MessageSettings s = Settings();

    CHECK(RenderMessage(s, "123456", "pt-BR") == "123456 é o seu código Acme.");
    CHECK(RenderMessage(s, "123456", "pt_br") == "123456 é o seu código Acme.");
  }

  TEST_CASE("a tag falls back to its language, then to the default") {
    MessageSettings s = Settings();

    CHECK(RenderMessage(s, "123456", "pt-PT") == "123456 é o teu código Acme.");
    CHECK(RenderMessage(s, "123456", "fr-CA") == "123456 est votre code Acme.");
    CHECK(RenderMessage(s, "123456", "de") == "123456 is your Acme code.");
    CHECK(RenderMessage(s, "123456", "") == "123456 is your Acme code.");
  }

  TEST_CASE("the WebOTP line ends every localised message") {
    MessageSettings s = Settings();
    s.webotp_domain = "login.acme.example";

    std::string text = RenderMessage(s, "042000", "fr");

    CHECK(text.substr(text.rfind('\n') + 1) == "@login.acme.example #042000");
  }
}
