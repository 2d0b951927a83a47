//! `#[derive(factos::Event)]` refuses to compile what the store could not
//! store or tell apart; each case's message is in `tests/ui/*.stderr`.

#[test]
fn misdeclared_event_enums_do_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
