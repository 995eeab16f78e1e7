# osy_add_cmocka_tests(<source> LABEL <label> [PER_CASE] [LIBS ...] [TIMEOUT s])
#
# Builds one cmocka binary from <source> (linked with optsync_common and the
# test support library). With PER_CASE, every cmocka_unit_test*(name) found
# in the source becomes its own CTest test running "<binary> <name>", so a
# failure names the case and CTest counts cases, not files.
function(osy_add_cmocka_tests source)
    cmake_parse_arguments(ARG "PER_CASE" "LABEL;TIMEOUT" "LIBS" ${ARGN})
    get_filename_component(name ${source} NAME_WE)
    add_executable(${name} ${source})
    target_link_libraries(${name} PRIVATE osy_testsupport optsync_common
                          PkgConfig::CMOCKA ${ARG_LIBS})
    if(NOT ARG_TIMEOUT)
        set(ARG_TIMEOUT 120)
    endif()
    if(ARG_PER_CASE)
        file(READ ${source} text)
        string(REGEX MATCHALL
               "cmocka_unit_test(_setup|_teardown|_setup_teardown|_prestate|_prestate_setup_teardown)?\\([ \t\r\n]*[A-Za-z0-9_]+"
               cases "${text}")
        if(NOT cases)
            message(FATAL_ERROR "${source}: no cmocka_unit_test() cases found")
        endif()
        foreach(c ${cases})
            string(REGEX REPLACE ".*\\([ \t\r\n]*" "" case_name "${c}")
            add_test(NAME ${name}.${case_name} COMMAND ${name} ${case_name})
            set_tests_properties(${name}.${case_name} PROPERTIES
                LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT}
                FAIL_REGULAR_EXPRESSION "\\[  PASSED  \\] 0 test")
        endforeach()
    else()
        add_test(NAME ${name} COMMAND ${name})
        set_tests_properties(${name} PROPERTIES LABELS ${ARG_LABEL}
                             TIMEOUT ${ARG_TIMEOUT})
    endif()
endfunction()
