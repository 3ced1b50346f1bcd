// Realistic Zoho Inventory items for benchmarks: ~2 KB each, 19-digit ids, Arabic and English
// names, nested locations and custom_fields, last_modified_time with a +0300 offset.
#pragma once

#include <cstdint>
#include <string>

namespace tds::bench {

inline std::string zoho_item(std::uint64_t n) {
  const std::string id = std::to_string(2646610000000113574ULL + n * 7919);
  std::string s;
  s.reserve(2300);
  s += R"({"item_id":)" + id + R"(,"name":"زيت زيتون بكر ممتاز Extra Virgin Olive Oil 1L #)" + std::to_string(n) +
       R"(","item_name":"زيت زيتون Olive Oil","unit":"pcs","status":"active","source":"user","is_linked_with_zohocrm":false,)"
       R"("zcrm_product_id":"","description":"زيت زيتون عالي الجودة من المزارع المحلية — cold pressed, first harvest 2025",)"
       R"("rate":)" + std::to_string(12.5 + static_cast<double>(n % 100) / 4) + R"(,"purchase_rate":8.75,"tax_id":2646610000000069001,)"
       R"("tax_name":"VAT 15%","tax_percentage":15,"sku":"OIL-)" + std::to_string(100000 + n) + R"(","upc":"","ean":"6281234567890",)"
       R"("isbn":"","part_number":"EVO-1L","brand":"الريف","manufacturer":"Al Reef Foods Co.","category_id":2646610000000070011,)"
       R"("category_name":"زيوت Oils","product_type":"goods","item_type":"inventory","is_taxable":true,"track_inventory":true,)"
       R"("stock_on_hand":)" + std::to_string(n % 500) + R"(,"available_stock":)" + std::to_string(n % 480) +
       R"(,"actual_available_stock":)" + std::to_string(n % 470) + R"(,"reorder_level":25,"initial_stock":100,)"
       R"("initial_stock_rate":8.5,"vendor_id":2646610000000071234,"vendor_name":"شركة الريف للأغذية",)"
       R"("image_name":"olive-oil.jpg","image_type":"jpg","has_attachment":false,"weight":1.05,"weight_unit":"kg",)"
       R"("length":8.0,"width":8.0,"height":28.5,"dimension_unit":"cm","created_time":"2024-02-11T10:15:00+0300",)"
       R"("last_modified_time":"2025-11-13T08:30:00+0300","hsn_or_sac":"150910","sales_channels":[],)"
       R"("locations":[{"location_id":2646610000000080001,"location_name":"المستودع الرئيسي Main Warehouse",)"
       R"("status":"active","is_primary":true,"location_stock_on_hand":)" + std::to_string(n % 300) +
       R"(,"location_available_stock":120,"location_actual_available_stock":118},)"
       R"({"location_id":2646610000000080002,"location_name":"فرع جدة Jeddah Branch","status":"active","is_primary":false,)"
       R"("location_stock_on_hand":80,"location_available_stock":75,"location_actual_available_stock":75}],)"
       R"("custom_fields":[{"customfield_id":2646610000000090001,"label":"بلد المنشأ Origin","value":"Saudi Arabia",)"
       R"("data_type":"string","is_active":true,"show_on_pdf":false,"index":1},)"
       R"({"customfield_id":2646610000000090002,"label":"Shelf Life days","value":540,"data_type":"number",)"
       R"("is_active":true,"show_on_pdf":true,"index":2},{"customfield_id":2646610000000090003,"label":"Halal",)"
       R"("value":true,"data_type":"check_box","is_active":true,"show_on_pdf":false,"index":3}],)"
       R"("tags":[{"tag_id":2646610000000095001,"tag_option_id":2646610000000095101,"tag_name":"Season","tag_option_name":"Winter"}],)"
       R"("package_details":{"length":8,"width":8,"height":28.5,"weight":1.05,"weight_unit":"kg","dimension_unit":"cm"},)"
       R"("preferred_vendors":[{"vendor_id":2646610000000071234,"vendor_name":"Al Reef","is_primary":true,"item_price":8.75}],)"
       R"("created_at":"2024-02-11T10:15:00","updated_at":"2025-11-13T08:30:00","zoho_synced_at":null,"notes":null})";
  return s;
}

inline std::string zoho_page(std::size_t count, bool has_more = true) {
  std::string s = R"({"code":0,"message":"success","items":[)";
  for (std::size_t i = 0; i < count; ++i) {
    if (i) s += ',';
    s += zoho_item(i);
  }
  s += R"(],"page_context":{"page":1,"per_page":200,"has_more_page":)";
  s += has_more ? "true" : "false";
  s += R"(,"report_name":"Items","sort_column":"created_time","sort_order":"A"}})";
  return s;
}

// About `bytes` of JSON: an object holding an array of items.
inline std::string large_document(std::size_t bytes) {
  std::string s = R"({"report":"inventory","items":[)";
  for (std::uint64_t i = 0; s.size() < bytes; ++i) {
    if (i) s += ',';
    s += zoho_item(i);
  }
  s += "]}";
  return s;
}

}  // namespace tds::bench
