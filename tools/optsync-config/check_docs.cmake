# Fails when docs/configuration.md differs from `optsync-config --markdown`.
# Usage: cmake -DTOOL=<optsync-config> -DDOC=<docs/configuration.md> -P this
execute_process(COMMAND ${TOOL} --markdown OUTPUT_VARIABLE generated
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${TOOL} --markdown failed (${rc})")
endif()
file(READ ${DOC} committed)
if(NOT generated STREQUAL committed)
    message(FATAL_ERROR "${DOC} is out of date: regenerate it with\n"
            "  optsync-config --markdown > docs/configuration.md")
endif()
message(STATUS "${DOC} matches optsync-config --markdown")
