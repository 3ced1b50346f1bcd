# Install rules: headers, both libraries, an exported CMake package and a pkg-config file.
# Dependencies the static library needs in a consumer are found by tdscacheConfig.cmake.
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/tdscache DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/capi/tdscache.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(TDS_INSTALL_TARGETS tdscache)
if(TDS_BUILD_SHARED)
  list(APPEND TDS_INSTALL_TARGETS tdscache_shared)
endif()
install(TARGETS ${TDS_INSTALL_TARGETS} EXPORT tdscacheTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT tdscacheTargets NAMESPACE tdscache::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tdscache)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tdscacheConfig.cmake.in
  ${PROJECT_BINARY_DIR}/tdscacheConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tdscache)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tdscacheConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tdscacheConfig.cmake ${PROJECT_BINARY_DIR}/tdscacheConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tdscache)

# The .pc file finds its prefix from where it lies (${pcfiledir}), so the tree stays right when
# installed with `cmake --install --prefix` elsewhere than the configured prefix, or moved.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(TDS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(TDS_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(TDS_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  file(RELATIVE_PATH TDS_PC_UP "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
  string(REGEX REPLACE "/$" "" TDS_PC_UP "${TDS_PC_UP}")
  set(TDS_PC_PREFIX "\${pcfiledir}/${TDS_PC_UP}")
  set(TDS_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(TDS_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/tdscache.pc.in ${PROJECT_BINARY_DIR}/tdscache.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/tdscache.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
