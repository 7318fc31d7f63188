# cmake -DBUILD_DIR=... -DTARGET=... -DEXPECT=pass|fail -DHEADER=... -P check.cmake
# Builds one probe target of the layering tests and checks the outcome: a
# "fail" probe must fail *because* HEADER is not on its include path (so a
# probe broken in any other way cannot pass).
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(log "${out}${err}")
if(EXPECT STREQUAL "pass")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${TARGET} should compile (it may include ${HEADER}):\n${log}")
  endif()
else()
  if(rc EQUAL 0)
    message(FATAL_ERROR "${TARGET} compiled, but its layer must not see ${HEADER}")
  endif()
  string(FIND "${log}" "${HEADER}: No such file or directory" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${TARGET} failed, but not because ${HEADER} is out of reach:\n${log}")
  endif()
endif()
message(STATUS "${TARGET}: ${EXPECT} as expected")
